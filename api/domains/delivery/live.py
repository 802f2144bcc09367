"""Live tracking: WebSocket subscribers of this worker, fed from the shared event bus.

Every API worker runs one feed. It follows the event stream the outbox relay
publishes to (PostgreSQL ``event_stream``, woken by ``NOTIFY nearx_events``; or
the Redis stream when the bus is Redis) and the lightweight
``NOTIFY nearx_positions`` that GPS ingestion sends on commit (positions are too
frequent for the outbox). It turns both into messages per topic (one per
delivery for its customer, one per courier for their offers) and hands them to
the sockets subscribed *in this process*. So any worker can serve any socket:
the fan-out between workers is the bus, the in-process queues only the last hop.

Before pickup the customer sees the courier at the centre of an H3 resolution-8
cell (about 500 m across), not the precise fix: where a courier waits between
jobs is theirs. After pickup the fix is shown as it is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import datetime
from typing import Any, cast

import aio_pika
import h3
import msgspec
import redis.asyncio as redis
from litestar import WebSocket
from litestar.exceptions import WebSocketException
from litestar.handlers.websocket_handlers import send_websocket_stream
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row

from api.domains.delivery import repository as repo
from api.domains.delivery.schemas import (
    LiveEta,
    LiveMessage,
    LiveOffer,
    LiveOfferClosed,
    LivePosition,
    LiveStatus,
)
from api.domains.events import repository as events_repo
from api.domains.events.buses import DEFAULT_STREAM, declare_exchange
from api.domains.events.model import Event
from api.errors import DomainError
from nearx.settings import Settings

log = logging.getLogger(__name__)

POSITIONS_CHANNEL = "nearx_positions"
"""NOTIFY channel of courier positions (sent by GPS ingestion, in its transaction)."""
EVENTS_CHANNEL = "nearx_events"
"""NOTIFY channel the PostgreSQL bus sends after appending to the event stream."""
PRE_PICKUP_RESOLUTION = 8
"""Positions shown to a customer before pickup snap to this H3 resolution's cell centre (~500 m)."""
QUEUE_SIZE = 256
"""Messages buffered per socket; a socket that falls further behind loses the oldest."""
_ENCODER = msgspec.json.Encoder()


def delivery_topic(delivery_id: uuid.UUID | str) -> str:
    return f"delivery:{delivery_id}"


def courier_topic(courier_id: uuid.UUID | str) -> str:
    return f"courier:{courier_id}"


def shown_position(lat: float, lng: float, status: str) -> tuple[float, float, bool]:
    """What a customer may see of a courier's position: ``(lat, lng, precise)``."""
    if status == "picked_up":
        return lat, lng, True
    centre = h3.cell_to_latlng(h3.latlng_to_cell(lat, lng, PRE_PICKUP_RESOLUTION))
    return centre[0], centre[1], False


class LiveHub:
    """Topic -> the queues of this process's sockets; publishing never blocks the feed."""

    def __init__(self) -> None:
        self._topics: dict[str, set[asyncio.Queue[LiveMessage]]] = {}

    @contextmanager
    def subscribe(self, topic: str) -> Iterator[asyncio.Queue[LiveMessage]]:
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._topics.setdefault(topic, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._topics.get(topic, set())
            subscribers.discard(queue)
            if not subscribers:
                self._topics.pop(topic, None)

    def watched(self, topic: str) -> bool:
        return topic in self._topics

    def publish(self, topic: str, message: LiveMessage) -> None:
        for queue in self._topics.get(topic, ()):
            if queue.full():  # a stalled socket drops its oldest message, never stalls the others
                queue.get_nowait()
            queue.put_nowait(message)


def messages_for_event(event: Event) -> list[tuple[str, LiveMessage]]:
    """The live messages one bus event becomes (none for events nobody tracks live)."""
    if event.aggregate_type != "delivery":
        return []
    payload = event.payload
    delivery_id = event.aggregate_id
    if event.event_type == "delivery.eta_updated":
        eta = LiveEta(delivery_id=delivery_id, eta_at=payload["eta_at"], at=event.occurred_at)
        return [(delivery_topic(delivery_id), eta)]
    status = LiveStatus(
        delivery_id=delivery_id, status=payload["to"], event=event.event_type, at=event.occurred_at
    )
    messages: list[tuple[str, LiveMessage]] = [(delivery_topic(delivery_id), status)]
    offer = payload.get("offer")
    if offer is not None:
        topic = courier_topic(offer["courier_id"])
        if offer["status"] == "pending":
            made = LiveOffer(
                offer_id=offer["id"],
                delivery_id=delivery_id,
                expires_at=offer["expires_at"],
                dropoff_eta_s=offer["dropoff_eta_s"],
            )
            messages.append((topic, made))
        else:
            closed = LiveOfferClosed(offer_id=offer["id"], delivery_id=delivery_id, outcome=offer["status"])
            messages.append((topic, closed))
    return messages


class TrackedDelivery(msgspec.Struct, frozen=True):
    id: uuid.UUID
    status: str


class CourierFix(msgspec.Struct, frozen=True):
    """The ``nearx_positions`` payload: a courier's new position and the deliveries it is shown on."""

    lat: float
    lng: float
    at: datetime
    deliveries: list[TrackedDelivery]

    def encode(self) -> str:
        return _ENCODER.encode(self).decode()


def messages_for_position(raw: str) -> list[tuple[str, LiveMessage]]:
    """A ``nearx_positions`` payload as one message per delivery, rounded until pickup."""
    fix = msgspec.json.decode(raw, type=CourierFix)
    messages: list[tuple[str, LiveMessage]] = []
    for delivery in fix.deliveries:
        lat, lng, precise = shown_position(fix.lat, fix.lng, delivery.status)
        position = LivePosition(delivery_id=delivery.id, lat=lat, lng=lng, precise=precise, at=fix.at)
        messages.append((delivery_topic(delivery.id), position))
    return messages


async def stream_to(
    socket: WebSocket[Any, Any, Any], snapshot: msgspec.Struct, queue: asyncio.Queue[LiveMessage]
) -> None:
    """Accept, send the snapshot, then every message of the topic until the client leaves."""

    async def messages() -> AsyncGenerator[bytes, None]:
        yield _ENCODER.encode(snapshot)
        while True:
            yield _ENCODER.encode(await queue.get())

    await socket.accept()
    await send_websocket_stream(socket, messages(), listen_for_disconnect=True, mode="text")


@contextmanager
def closing_on_refusal() -> Iterator[None]:
    """A domain error before the socket is accepted closes it with ``4000 + status`` (4404, 4409...)."""
    try:
        yield
    except DomainError as exc:
        raise WebSocketException(detail=exc.detail, code=4000 + exc.status) from exc


async def _connect(url: str) -> AsyncConnection[DictRow]:
    return await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


async def follow_postgres(
    url: str, hub: LiveHub, *, stop: asyncio.Event, follow_stream: bool, poll_s: float
) -> None:
    """Positions from NOTIFY, and (for the PostgreSQL bus) new rows of the event stream.

    The stream is read from its tail at start-up (a socket's snapshot covers the
    past); a NOTIFY wakes the reader, and ``poll_s`` bounds the wait if one is lost.
    """
    async with await _connect(url) as conn:
        await conn.execute(f"LISTEN {POSITIONS_CHANNEL}")
        if follow_stream:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        seq = await repo.event_stream_tail(conn) if follow_stream else 0
        while not stop.is_set():
            async for notify in conn.notifies(timeout=poll_s, stop_after=1):
                if notify.channel == POSITIONS_CHANNEL:
                    _publish_all(hub, messages_for_position(notify.payload))
            while follow_stream and (rows := await events_repo.stream_after(conn, seq, 500)):
                seq = rows[-1]["seq"]
                for row in rows:
                    _publish_all(hub, messages_for_event(Event.from_row(row)))


async def follow_redis(
    client: redis.Redis,
    hub: LiveHub,
    *,
    stop: asyncio.Event,
    block_ms: int,
    stream: str = DEFAULT_STREAM,
    after: str = "$",
) -> None:
    """Entries of the Redis stream after ``after`` (its tail by default), read with XREAD rather
    than a consumer group: every worker reads all of it."""
    last = after
    while not stop.is_set():
        replies = cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None,
            await client.xread({stream: last}, count=500, block=block_ms),
        )
        for _stream, entries in replies or []:
            for entry_id, fields in entries:
                last = entry_id.decode()
                _publish_all(hub, messages_for_event(Event.from_json(fields[b"event"])))


def _publish_all(hub: LiveHub, messages: list[tuple[str, LiveMessage]]) -> None:
    for topic, message in messages:
        hub.publish(topic, message)


async def follow_rabbitmq(url: str, exchange: str, hub: LiveHub) -> None:
    """Delivery events from the RabbitMQ exchange through this worker's own exclusive queue.

    A consumer group would share the events among workers; live tracking needs
    every worker to see all of them, so each binds a private, auto-deleted queue.
    """
    connection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel()
        events = await declare_exchange(channel, exchange)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key="delivery.#")
        async with queue.iterator(no_ack=True) as messages:  # ends when the feed task is cancelled
            async for message in messages:
                _publish_all(hub, messages_for_event(Event.from_json(message.body)))
    finally:
        await connection.close()


@asynccontextmanager
async def running_feed(url: str, settings: Settings) -> AsyncIterator[LiveHub]:
    """The hub of this worker, fed for the lifetime of the block (each leg restarted after a failure).

    Positions always come from PostgreSQL; events from the bus the relay publishes
    to (the same choice as ``bus_for``: RabbitMQ, else Redis, else PostgreSQL).
    """
    hub = LiveHub()
    stop = asyncio.Event()
    poll_s = settings.events_relay_interval_s
    on_postgres = not (settings.rabbitmq_url or settings.redis_url)
    client = (
        redis.Redis.from_url(settings.redis_url) if settings.redis_url and not settings.rabbitmq_url else None
    )
    legs: dict[str, Callable[[], Awaitable[None]]] = {
        "live-feed-postgres": lambda: follow_postgres(
            url, hub, stop=stop, follow_stream=on_postgres, poll_s=poll_s
        )
    }
    if settings.rabbitmq_url:
        rabbitmq_url, exchange = settings.rabbitmq_url, settings.rabbitmq_exchange
        legs["live-feed-rabbitmq"] = lambda: follow_rabbitmq(rabbitmq_url, exchange, hub)
    elif client is not None:
        legs["live-feed-redis"] = lambda: follow_redis(client, hub, stop=stop, block_ms=int(poll_s * 1000))
    tasks = [asyncio.create_task(_supervised(leg, stop, poll_s), name=name) for name, leg in legs.items()]
    try:
        yield hub
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        if client is not None:
            await client.aclose()


async def _supervised(run: Callable[[], Awaitable[None]], stop: asyncio.Event, retry_s: float) -> None:
    while not stop.is_set():
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live feed failed; restarting")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry_s)
