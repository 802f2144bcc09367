"""The RabbitMQ bus: confirmed, persistent, ordered per aggregate; consumers ack after commit."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.events.buses import RabbitMQBus, bus_for, unrouted_queue
from api.domains.events.consumers import RabbitMQConsumer, handle_once
from api.domains.events.jobs import WEBHOOK_CONSUMER, relay_once, webhooks_once
from api.domains.events.model import Event
from api.domains.events.relay import Relay
from nearx.settings import Settings, load_settings
from tests.api.marketplace.conftest import MakeMerchant, MakeProduct, MakeUser
from tests.api.marketplace.events_support import Crash, DiesAfter, queue_depth, seed, unpublished

pytestmark = pytest.mark.rabbitmq

Consumer = Callable[..., Awaitable[RabbitMQConsumer]]


@pytest.fixture
def rabbitmq_url() -> str:
    url = os.environ.get("NEARX_TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("NEARX_TEST_RABBITMQ_URL is not set")
    return url


@pytest.fixture
async def exchange(rabbitmq_url: str) -> AsyncIterator[str]:
    """A throwaway exchange name; its queues and exchanges are deleted afterwards."""
    name = f"nearx.test.{uuid.uuid4().hex[:12]}"
    yield name
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel()
        for queue in (
            unrouted_queue(name),
            *(f"{name}.{group}" for group in ("g1", "g2", "orders", WEBHOOK_CONSUMER)),
        ):
            await channel.queue_delete(queue)
        for exchange_name in (name, unrouted_queue(name)):
            await channel.exchange_delete(exchange_name)


@pytest.fixture
async def consumer(rabbitmq_url: str, exchange: str) -> AsyncIterator[Consumer]:
    opened: list[RabbitMQConsumer] = []

    async def make(group: str, bindings: tuple[str, ...] = ("#",)) -> RabbitMQConsumer:
        made = await RabbitMQConsumer.connect(rabbitmq_url, group=group, exchange=exchange, bindings=bindings)
        opened.append(made)
        return made

    yield make
    for made in opened:
        await made.close()


def rabbit_settings(tmp_path: Path, url: str, exchange: str) -> Settings:
    return load_settings(
        {
            "NEARX_HOME": str(tmp_path / "nearx"),
            "NEARX_RABBITMQ_URL": url,
            "NEARX_RABBITMQ_EXCHANGE": exchange,
            "NEARX_REDIS_URL": "redis://127.0.0.1:1/0",  # RabbitMQ wins over Redis
        }
    )


async def test_relay_publishes_and_the_consumer_processes_each_event_once_in_order(
    conn: Any, db_url: str, rabbitmq_url: str, exchange: str, consumer: Consumer, tmp_path: Path
) -> None:
    group = await consumer("g1")  # the queue exists before the relay publishes
    ids = await seed(conn, aggregates=4, per_aggregate=5)
    settings = rabbit_settings(tmp_path, rabbitmq_url, exchange)
    assert isinstance(bus_for(settings, conn), RabbitMQBus)
    assert await relay_once(db_url, settings) == 20
    assert await unpublished(conn) == 0
    stream = await (await conn.execute("SELECT count(*) AS n FROM event_stream")).fetchone()
    assert stream["n"] == 0  # published to RabbitMQ, not the PostgreSQL stream

    seen: list[Event] = []

    async def handler(_: Any, event: Event) -> None:
        seen.append(event)

    assert await group.poll(conn, handler) == 20
    assert await group.poll(conn, handler) == 0
    assert await queue_depth(rabbitmq_url, f"{exchange}.g1") == 0  # all acknowledged
    for aggregate in ids:
        assert [e.payload["n"] for e in seen if e.aggregate_id == aggregate] == [0, 1, 2, 3, 4]


async def test_relay_killed_mid_batch_republishes_and_duplicates_are_harmless(
    conn: Any, rabbitmq_url: str, exchange: str, consumer: Consumer
) -> None:
    group = await consumer("g1")
    await seed(conn)
    bus = RabbitMQBus(rabbitmq_url, exchange=exchange)
    try:
        with pytest.raises(Crash):
            await Relay(conn, DiesAfter(bus, 3)).drain()
        assert await unpublished(conn) == 12
        assert await Relay(conn, bus).drain() == 12
    finally:
        await bus.close()
    assert await queue_depth(rabbitmq_url, f"{exchange}.g1") == 15  # 3 delivered twice

    handled: list[uuid.UUID] = []

    async def handler(_: Any, event: Event) -> None:
        handled.append(event.event_id)

    assert await group.poll(conn, handler) == 12
    assert len(set(handled)) == len(handled) == 12
    assert await queue_depth(rabbitmq_url, f"{exchange}.g1") == 0


async def test_a_consumer_dying_before_its_ack_gets_a_harmless_redelivery(
    conn: Any, rabbitmq_url: str, exchange: str, consumer: Consumer
) -> None:
    first = await consumer("g2")
    await seed(conn, aggregates=1, per_aggregate=2)
    bus = RabbitMQBus(rabbitmq_url, exchange=exchange)
    try:
        await Relay(conn, bus).drain()
    finally:
        await bus.close()

    runs: list[uuid.UUID] = []

    async def handler(_: Any, event: Event) -> None:
        runs.append(event.event_id)

    # the first consumer commits its effect, then dies before acknowledging
    taken = await first.queue.get(no_ack=False)
    assert await handle_once(conn, "g2", Event.from_json(taken.body), handler)
    await first.close()

    second = await consumer("g2")
    assert await second.poll(conn, handler) == 1  # the redelivered one is skipped, the other runs
    assert len(runs) == len(set(runs)) == 2
    assert await queue_depth(rabbitmq_url, f"{exchange}.g2") == 0


async def test_a_failing_handler_leaves_its_message_queued(
    conn: Any, rabbitmq_url: str, exchange: str, consumer: Consumer
) -> None:
    group = await consumer("g1")
    await seed(conn, aggregates=1, per_aggregate=1)
    bus = RabbitMQBus(rabbitmq_url, exchange=exchange)
    try:
        await Relay(conn, bus).drain()
    finally:
        await bus.close()

    async def broken(_: Any, event: Event) -> None:
        raise RuntimeError("downstream is down")

    with pytest.raises(RuntimeError):
        await group.poll(conn, broken)
    processed = await (await conn.execute("SELECT count(*) AS n FROM processed_events")).fetchone()
    assert processed["n"] == 0  # the claim rolled back with the handler
    assert await queue_depth(rabbitmq_url, f"{exchange}.g1") == 1

    async def working(_: Any, event: Event) -> None:
        pass

    assert await group.poll(conn, working) == 1


async def test_events_no_queue_binds_are_kept_not_dropped(
    conn: Any, rabbitmq_url: str, exchange: str, consumer: Consumer
) -> None:
    orders = await consumer("orders", bindings=("order.*",))
    await seed(conn, aggregates=2, per_aggregate=2)  # thing.changed: nobody binds it
    bus = RabbitMQBus(rabbitmq_url, exchange=exchange)
    try:
        assert await Relay(conn, bus).drain() == 4
    finally:
        await bus.close()

    async def handler(_: Any, event: Event) -> None:
        raise AssertionError("an order consumer got a thing event")

    assert await orders.poll(conn, handler) == 0
    assert await queue_depth(rabbitmq_url, unrouted_queue(exchange)) == 4


async def test_webhooks_fan_out_from_the_rabbitmq_bus(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
    db_url: str,
    rabbitmq_url: str,
    exchange: str,
    tmp_path: Path,
) -> None:
    settings = rabbit_settings(tmp_path, rabbitmq_url, exchange)
    received: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        nothing = {"succeeded": 0, "failed": 0, "rescheduled": 0}
        assert await webhooks_once(db_url, settings, client=http) == nothing  # declares the queue
        owner, merchant = await make_merchant()
        variant = (await make_product(owner, merchant))["variants"][0]["id"]
        hook = await client.post(
            f"/v1/merchants/{merchant['id']}/webhooks",
            json={"url": "https://merchant.example/hooks", "event_types": ["order.created"]},
            headers=owner.headers,
        )
        assert hook.status_code == 201, hook.text
        customer = await make_user()
        order = await client.post(
            "/v1/orders",
            json={
                "items": [{"variant_id": variant, "quantity": 1}],
                "delivery": {"lat": 27.701, "lng": 85.321},
            },
            headers={**customer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert order.status_code == 201, order.text
        assert await relay_once(db_url, settings) > 0
        assert await webhooks_once(db_url, settings, client=http) == {**nothing, "succeeded": 1}
        assert await webhooks_once(db_url, settings, client=http) == nothing
    assert [r.headers["X-Nearx-Event"] for r in received] == ["order.created"]
    stream = await (await conn.execute("SELECT count(*) AS n FROM event_stream")).fetchone()
    assert stream["n"] == 0  # it came through RabbitMQ, not the PostgreSQL stream
    assert await queue_depth(rabbitmq_url, f"{exchange}.{WEBHOOK_CONSUMER}") == 0
