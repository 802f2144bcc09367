"""A relay process killed for real (SIGKILL) between publishing a batch and marking it, then restarted.

The test holds a row lock on the first outbox row, so the relay's "mark
published" statement blocks right after the batch went to the bus: the kill
lands mid-batch every time, with no timing involved. After the restart every
event is on the bus, none is lost, and the consumer runs once per event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from api.domains.events.consumers import RabbitMQConsumer, poll_postgres
from api.domains.events.model import Event
from tests.api.marketplace.events_support import queue_depth, seed, unpublished

BATCH = 200
"""The relay's batch size (the CLI's default)."""
EVENTS = 250
"""More than one batch, so the restarted relay also publishes events it never saw."""
BOUND_S = 60.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait, boundedly, for ``check`` to hold (a process starting up; no timing is asserted)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def start_relay(env: dict[str, str]) -> asyncio.subprocess.Process:
    """``nearx events relay`` in its own process."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from nearx.cli import app; app()", "events", "relay", env=env
    )


async def relay_blocked_marking(conn: Any) -> bool:
    row = await (
        await conn.execute(
            """
            SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE 'UPDATE outbox SET published_at%%'
            """
        )
    ).fetchone()
    return bool(row["n"])


@pytest.fixture
def relay_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEARX_") or k.startswith("NEARX_TEST_")}
    return env | {
        "NEARX_DATABASE_URL": db_url,
        "NEARX_HOME": str(tmp_path / "relay-home"),
        "NEARX_EVENTS_RELAY_INTERVAL_S": "0.2",
    }


async def kill_mid_batch_then_restart(conn: Any, db_url: str, env: dict[str, str]) -> None:
    """Seed, SIGKILL the relay between publish and mark, check nothing was marked, restart, drain."""
    await seed(conn, aggregates=5, per_aggregate=EVENTS // 5)
    async with (
        await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as blocker,
        blocker.transaction(),
    ):
        await blocker.execute("SELECT 1 FROM outbox ORDER BY position LIMIT 1 FOR UPDATE")
        relay = await start_relay(env)
        try:
            await eventually(lambda: relay_blocked_marking(conn), "the relay to publish its first batch")
        finally:
            relay.send_signal(signal.SIGKILL)
            await relay.wait()
        assert relay.returncode == -signal.SIGKILL
        assert await unpublished(conn) == EVENTS  # the batch went out but was never marked
        # the lock is gone: the dead relay's session ends and frees the relay lock

    restarted = await start_relay(env)
    try:
        await eventually(lambda: _drained(conn), "the restarted relay to drain the outbox")
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()
    assert restarted.returncode == 0  # a clean stop on SIGTERM


async def _drained(conn: Any) -> bool:
    return await unpublished(conn) == 0


async def test_a_killed_postgres_relay_loses_nothing(
    conn: Any, db_url: str, relay_env: dict[str, str]
) -> None:
    await kill_mid_batch_then_restart(conn, db_url, relay_env)
    stream = await (await conn.execute("SELECT seq, event_id FROM event_stream ORDER BY seq")).fetchall()
    outbox = await (await conn.execute("SELECT event_id FROM outbox ORDER BY position")).fetchall()
    assert [row["seq"] for row in stream] == list(range(1, EVENTS + 1))  # republished batch deduplicated
    assert [row["event_id"] for row in stream] == [row["event_id"] for row in outbox]

    handled: list[uuid.UUID] = []

    async def handler(_: Any, event: Event) -> None:
        handled.append(event.event_id)

    while await poll_postgres(conn, "audit", handler):
        pass
    assert len(handled) == len(set(handled)) == EVENTS


@pytest.fixture
async def rabbit_group(relay_env: dict[str, str]) -> AsyncIterator[tuple[RabbitMQConsumer, str]]:
    """Point the relay processes at RabbitMQ (a throwaway exchange), with the group's queue bound first."""
    url = os.environ.get("NEARX_TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("NEARX_TEST_RABBITMQ_URL is not set")
    exchange = f"nearx.test.{uuid.uuid4().hex[:12]}"
    relay_env |= {"NEARX_RABBITMQ_URL": url, "NEARX_RABBITMQ_EXCHANGE": exchange}
    group = await RabbitMQConsumer.connect(url, group="audit", exchange=exchange)
    try:
        yield group, f"{exchange}.audit"
    finally:
        channel = await group.queue.channel.get_underlay_channel()
        for queue in (f"{exchange}.audit", f"{exchange}.unrouted"):
            await channel.queue_delete(queue)
        for name in (exchange, f"{exchange}.unrouted"):
            await channel.exchange_delete(name)
        await group.close()


@pytest.mark.rabbitmq
async def test_a_killed_rabbitmq_relay_loses_nothing_and_duplicates_are_harmless(
    conn: Any, db_url: str, relay_env: dict[str, str], rabbit_group: tuple[RabbitMQConsumer, str]
) -> None:
    group, queue = rabbit_group
    await kill_mid_batch_then_restart(conn, db_url, relay_env)
    url = relay_env["NEARX_RABBITMQ_URL"]
    assert await queue_depth(url, queue) == EVENTS + BATCH  # the killed batch went out twice

    handled: list[uuid.UUID] = []

    async def handler(_: Any, event: Event) -> None:
        handled.append(event.event_id)

    while await queue_depth(url, queue):  # poll counts handled events; a batch of duplicates counts 0
        await group.poll(conn, handler)
    assert len(handled) == len(set(handled)) == EVENTS
    outbox = await (await conn.execute("SELECT event_id FROM outbox")).fetchall()
    assert set(handled) == {row["event_id"] for row in outbox}
