"""The live feed's pieces: rounding before pickup, event -> message mapping, the Redis stream leg."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import Any

import aio_pika
import h3
import pytest
import redis.asyncio as redis

from api.domains.delivery.live import (
    LiveHub,
    courier_topic,
    delivery_topic,
    follow_rabbitmq,
    follow_redis,
    messages_for_event,
    shown_position,
)
from api.domains.delivery.schemas import LiveOffer, LiveOfferClosed, LiveStatus
from api.domains.events.buses import RabbitMQBus, RedisStreamsBus, unrouted_queue
from api.domains.events.model import Event
from nearx.clock import utc_now
from nearx.ids import new_id


def _event(event_type: str, payload: dict[str, object], delivery_id: uuid.UUID) -> Event:
    return Event(
        event_id=new_id(),
        event_type=event_type,
        schema_version=1,
        aggregate_type="delivery",
        aggregate_id=delivery_id,
        city_id="kathmandu",
        payload=payload,
        occurred_at=utc_now(),
    )


def test_positions_are_cell_centres_until_pickup() -> None:
    fix = (27.71234, 85.32345)
    centre = h3.cell_to_latlng(h3.latlng_to_cell(*fix, 8))
    for status in ("assigned", "at_pickup"):
        assert shown_position(*fix, status) == (*centre, False)
    assert shown_position(*fix, "picked_up") == (*fix, True)


def test_an_offer_event_reaches_the_delivery_and_the_offered_courier() -> None:
    delivery_id, courier_id, offer_id = new_id(), new_id(), new_id()
    offer = {"id": str(offer_id), "courier_id": str(courier_id), "expires_at": "2026-01-01T00:00:45Z"}
    made = _event(
        "delivery.offered",
        {"to": "offered", "offer": {**offer, "status": "pending", "dropoff_eta_s": 900.0}},
        delivery_id,
    )
    [(to_customer, status), (to_courier, new_offer)] = messages_for_event(made)
    assert (to_customer, to_courier) == (delivery_topic(delivery_id), courier_topic(courier_id))
    assert isinstance(status, LiveStatus)
    assert isinstance(new_offer, LiveOffer)
    closed = _event(
        "delivery.returned",
        {"to": "pending", "offer": {**offer, "status": "declined", "dropoff_eta_s": 900.0}},
        delivery_id,
    )
    [_, (_, outcome)] = messages_for_event(closed)
    assert isinstance(outcome, LiveOfferClosed)
    assert outcome.outcome == "declined"
    other = Event(**{**{f: getattr(made, f) for f in Event.__struct_fields__}, "aggregate_type": "order"})
    assert messages_for_event(other) == []


@pytest.mark.redis
async def test_the_redis_leg_delivers_bus_events_to_subscribers() -> None:
    url = os.environ.get("NEARX_TEST_REDIS_URL")
    if not url:
        pytest.skip("NEARX_TEST_REDIS_URL is not set")
    stream = f"nearx:test:live:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    hub = LiveHub()
    stop = asyncio.Event()
    delivery_id = new_id()
    try:
        with hub.subscribe(delivery_topic(delivery_id)) as queue:
            await RedisStreamsBus(client, stream=stream).publish(
                [_event("delivery.picked_up", {"to": "picked_up"}, delivery_id)]
            )
            follower = asyncio.create_task(
                follow_redis(client, hub, stop=stop, block_ms=100, stream=stream, after="0")
            )
            message = await asyncio.wait_for(queue.get(), timeout=15)
            assert isinstance(message, LiveStatus)
            assert (message.delivery_id, message.status) == (delivery_id, "picked_up")
            stop.set()
            await asyncio.wait_for(follower, timeout=15)
    finally:
        await client.delete(stream)
        await client.aclose()


@pytest.mark.rabbitmq
async def test_the_rabbitmq_leg_gives_every_worker_every_delivery_event() -> None:
    url = os.environ.get("NEARX_TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("NEARX_TEST_RABBITMQ_URL is not set")
    exchange = f"nearx.test.live.{uuid.uuid4().hex}"
    workers = [LiveHub(), LiveHub()]
    delivery_id = new_id()
    bus = RabbitMQBus(url, exchange=exchange)
    followers = [asyncio.create_task(follow_rabbitmq(url, exchange, hub)) for hub in workers]
    try:
        with (
            workers[0].subscribe(delivery_topic(delivery_id)) as first,
            workers[1].subscribe(delivery_topic(delivery_id)) as second,
        ):

            async def received(queue: asyncio.Queue[Any]) -> Any:
                while queue.empty():  # publish until the worker's queue is bound (earlier ones are unrouted)
                    await bus.publish([_event("delivery.assigned", {"to": "assigned"}, delivery_id)])
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(queue.get(), timeout=0.2)
                return queue.get_nowait()

            for queue in (first, second):
                message = await asyncio.wait_for(received(queue), timeout=15)
                assert isinstance(message, LiveStatus)
                assert (message.delivery_id, message.status) == (delivery_id, "assigned")
    finally:
        for follower in followers:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await bus.close()
        async with await aio_pika.connect(url) as connection:  # the throwaway exchange and its fallback
            channel = await connection.channel()
            await channel.queue_delete(unrouted_queue(exchange))
            for name in (exchange, unrouted_queue(exchange)):
                await channel.exchange_delete(name)
