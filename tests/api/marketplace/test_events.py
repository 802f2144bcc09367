"""The outbox relay: at least once, in order per aggregate, no event lost to out-of-order commits."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row

from api.app import create_app
from api.domains.events.buses import PostgresBus, RedisStreamsBus
from api.domains.events.consumers import RedisStreamConsumer, handle_once, poll_postgres
from api.domains.events.model import Event
from api.domains.events.relay import Relay
from nearx.outbox import append_event
from nearx.settings import Settings
from tests.api.marketplace.conftest import KTM, MakeUser
from tests.api.marketplace.events_support import Crash, DiesAfter, RecordingBus, append, seed, unpublished


async def test_relay_killed_mid_batch_loses_nothing_and_duplicates_are_harmless(conn: Any) -> None:
    await seed(conn)
    bus = RecordingBus()
    with pytest.raises(Crash):
        await Relay(conn, DiesAfter(bus, 5), batch_size=8).drain()
    assert len(bus.delivered) == 5
    assert await unpublished(conn) == 12  # nothing marked: the batch is redelivered
    assert await Relay(conn, bus, batch_size=8).drain() == 12
    assert await unpublished(conn) == 0
    assert len(bus.delivered) == 17  # 5 duplicates
    assert len({e.event_id for e in bus.delivered}) == 12

    seen: list[uuid.UUID] = []

    async def handler(_: Any, event: Event) -> None:
        seen.append(event.event_id)

    ran = [await handle_once(conn, "audit", event, handler) for event in bus.delivered]
    assert sum(ran) == 12
    assert sorted(seen) == sorted({e.event_id for e in bus.delivered})
    processed = await (await conn.execute("SELECT count(*) AS n FROM processed_events")).fetchone()
    assert processed["n"] == 12


async def test_per_aggregate_order_is_kept(conn: Any) -> None:
    ids = await seed(conn, aggregates=4, per_aggregate=5)
    bus = RecordingBus()
    await Relay(conn, bus, batch_size=3).drain()
    for aggregate in ids:
        steps = [e.payload["n"] for e in bus.delivered if e.aggregate_id == aggregate]
        assert steps == [0, 1, 2, 3, 4]


async def test_an_event_committed_after_a_later_position_is_not_skipped(conn: Any, db_url: str) -> None:
    """Position 1 commits after position 2 was relayed: a naive high-water mark would lose it."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as slow:
        async with slow.transaction():
            await append_event(
                slow,
                event_type="thing.slow",
                aggregate_type="thing",
                aggregate_id=uuid.uuid4(),
                payload={},
                city_id=None,
            )
            await append(conn, uuid.uuid4(), "fast", 0)
            bus = RecordingBus()
            assert await Relay(conn, bus).drain() == 1
            assert [e.event_type for e in bus.delivered] == ["thing.fast"]
        assert await Relay(conn, bus).drain() == 1
    assert [e.event_type for e in bus.delivered] == ["thing.fast", "thing.slow"]
    positions = await (await conn.execute("SELECT event_type FROM outbox ORDER BY position")).fetchall()
    assert [p["event_type"] for p in positions] == ["thing.slow", "thing.fast"]


async def test_postgres_bus_and_consumer_after_a_crash(conn: Any, db_url: str) -> None:
    await seed(conn)
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as relay_conn:
        with pytest.raises(Crash):
            await Relay(relay_conn, DiesAfter(PostgresBus(relay_conn), 4)).drain()
        assert await Relay(relay_conn, PostgresBus(relay_conn)).drain() == 12
    stream = await (await conn.execute("SELECT seq, event_id FROM event_stream ORDER BY seq")).fetchall()
    assert [row["seq"] for row in stream] == list(range(1, 13))  # gapless, no duplicate
    outbox_ids = await (await conn.execute("SELECT event_id FROM outbox ORDER BY position")).fetchall()
    assert [r["event_id"] for r in stream] == [r["event_id"] for r in outbox_ids]

    handled: list[str] = []

    async def handler(c: Any, event: Event) -> None:
        handled.append(event.event_type)

    assert await poll_postgres(conn, "search-indexer", handler, limit=5) == 5
    assert await poll_postgres(conn, "search-indexer", handler) == 7
    assert await poll_postgres(conn, "search-indexer", handler) == 0
    await conn.execute("UPDATE event_consumer_offsets SET seq = 0")  # a redelivery from the start
    assert await poll_postgres(conn, "search-indexer", handler) == 0
    assert len(handled) == 12


@pytest.mark.redis
async def test_redis_streams_bus_at_least_once_with_idempotent_consumer(conn: Any) -> None:
    url = os.environ.get("NEARX_TEST_REDIS_URL")
    if not url:
        pytest.skip("NEARX_TEST_REDIS_URL is not set")
    import redis.asyncio as redis

    stream = f"nearx:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    try:
        await seed(conn)
        bus = RedisStreamsBus(client, stream=stream)
        with pytest.raises(Crash):
            await Relay(conn, DiesAfter(bus, 3)).drain()
        assert await Relay(conn, bus).drain() == 12
        assert await client.xlen(stream) == 15  # 3 delivered twice

        handled: list[uuid.UUID] = []

        async def handler(c: Any, event: Event) -> None:
            handled.append(event.event_id)

        consumer = RedisStreamConsumer(client, group="notifier", name="n1", stream=stream)
        await consumer.ensure_group()
        await consumer.ensure_group()  # idempotent
        assert await consumer.poll(conn, handler) == 12
        assert await consumer.poll(conn, handler) == 0
        assert len(set(handled)) == len(handled) == 12
    finally:
        await client.delete(stream)
        await client.aclose()


async def test_serve_runs_the_relay_in_process(
    settings: Settings, db_url: str, make_user: MakeUser, conn: Any
) -> None:
    app: Litestar = create_app(settings, db_url=db_url, run_relay=True)
    owner = await make_user()
    async with AsyncTestClient(app=app) as client:
        headers = {"Authorization": owner.headers["Authorization"]}
        # a token from the other app instance is valid here: same settings, same keys
        created = await client.post(
            "/v1/merchants",
            json={"kind": "merchant", "category": "grocery", "name": "S", **KTM},
            headers=headers,
        )
        assert created.status_code == 201
        for _ in range(200):  # bounded wait for the background task (woken by NOTIFY)
            if await unpublished(conn) == 0:
                break
            await asyncio.sleep(0.05)
    assert await unpublished(conn) == 0
    stream = await (await conn.execute("SELECT event_type FROM event_stream")).fetchall()
    assert [row["event_type"] for row in stream] == ["merchant.applied"]


async def test_relay_once_job_publishes_to_the_default_bus(
    conn: Any, db_url: str, settings: Settings
) -> None:
    from api.domains.events.jobs import relay_once

    await seed(conn, aggregates=2, per_aggregate=2)
    assert await relay_once(db_url, settings) == 4
    assert await relay_once(db_url, settings) == 0
    row = await (await conn.execute("SELECT count(*) AS n FROM event_stream")).fetchone()
    assert row["n"] == 4
