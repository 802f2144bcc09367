"""Idempotent consumers: each records the event ids it processed, so redelivery changes nothing.

The handler runs in the same transaction as the processed-id insert (and, for
the PostgreSQL stream, the offset update): either all of it happens once, or
none of it and the event comes again. :func:`consumer_for` opens a consumer
group on whichever bus the relay publishes to (the same choice as ``bus_for``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

import aio_pika
import redis.asyncio as redis
from aio_pika.abc import AbstractConnection, AbstractQueue
from redis.exceptions import ResponseError

from api.domains.events import repository as repo
from api.domains.events.buses import DEFAULT_EXCHANGE, DEFAULT_STREAM, declare_exchange
from api.domains.events.model import Event
from nearx.db import Connection
from nearx.settings import Settings

Handler = Callable[[Connection, Event], Awaitable[None]]


class EventConsumer(Protocol):
    async def poll(self, conn: Connection, handler: Handler, *, count: int = 200) -> int:
        """Run ``handler`` on up to ``count`` waiting events not processed yet; returns how many ran."""
        ...

    async def close(self) -> None: ...


StreamReplies = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None
"""What XREADGROUP returns over RESP2 (the client default): [(stream, [(id, fields)])]."""


async def handle_once(conn: Connection, consumer: str, event: Event, handler: Handler) -> bool:
    """Run ``handler`` unless ``consumer`` already processed this event; ``True`` if it ran."""
    async with conn.transaction():
        if not await repo.claim_processed(conn, consumer, event.event_id):
            return False
        await handler(conn, event)
    return True


async def poll_postgres(conn: Connection, consumer: str, handler: Handler, *, limit: int = 200) -> int:
    """Process the next events of the PostgreSQL stream after the consumer's offset."""
    handled = 0
    async with conn.transaction():
        offset = await repo.lock_offset(conn, consumer)
        rows = await repo.stream_after(conn, offset, limit)
        for row in rows:
            event = Event.from_row(row)
            if await repo.claim_processed(conn, consumer, event.event_id):
                await handler(conn, event)
                handled += 1
        if rows:
            await repo.set_offset(conn, consumer, rows[-1]["seq"])
    return handled


class PostgresStreamConsumer:
    """A consumer group of the PostgreSQL stream: an offset row per group, read on the caller's connection."""

    def __init__(self, group: str) -> None:
        self._group = group

    async def poll(self, conn: Connection, handler: Handler, *, count: int = 200) -> int:
        return await poll_postgres(conn, self._group, handler, limit=count)

    async def close(self) -> None:
        """Nothing to release."""


class RedisStreamConsumer:
    """A consumer-group reader of the Redis stream; acknowledges only after the DB commit."""

    def __init__(self, client: redis.Redis, *, group: str, name: str, stream: str = DEFAULT_STREAM) -> None:
        self._client = client
        self._group = group
        self._name = name
        self._stream = stream

    @classmethod
    async def connect(cls, url: str, *, group: str, name: str) -> RedisStreamConsumer:
        """A consumer with its own client (closed by :meth:`close`) and its group created."""
        consumer = cls(redis.Redis.from_url(url), group=group, name=name)
        await consumer.ensure_group()
        return consumer

    async def close(self) -> None:
        await self._client.aclose()

    async def ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def poll(self, conn: Connection, handler: Handler, *, count: int = 200) -> int:
        """Process this consumer's pending messages first (a crash left them unacked), then new ones."""
        handled = 0
        for start in ("0", ">"):
            replies = cast(
                StreamReplies,
                await self._client.xreadgroup(self._group, self._name, {self._stream: start}, count=count),
            )
            for _stream, messages in replies or []:
                for message_id, fields in messages:
                    event = Event.from_json(fields[b"event"])
                    if await handle_once(conn, self._group, event, handler):
                        handled += 1
                    await self._client.xack(self._stream, self._group, message_id)
        return handled


class RabbitMQConsumer:
    """A consumer group as one durable queue ``<exchange>.<group>`` bound to the event exchange.

    Several processes may share the queue (competing consumers). A message is
    acknowledged only after the handler's transaction committed; a consumer that
    dies first leaves it unacknowledged, the broker redelivers it, and the
    processed-id record makes the second delivery a no-op. A failing handler
    rejects its message back onto the queue and raises.
    """

    def __init__(self, connection: AbstractConnection, queue: AbstractQueue, group: str) -> None:
        self._connection = connection
        self.queue = queue
        self._group = group

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        group: str,
        exchange: str = DEFAULT_EXCHANGE,
        bindings: Sequence[str] = ("#",),
    ) -> RabbitMQConsumer:
        """Declare the exchange and the group's queue (idempotent), bound to ``bindings`` (topic patterns)."""
        connection = await aio_pika.connect_robust(url)  # reconnects, and re-declares the queue
        channel = await connection.channel()
        events = await declare_exchange(channel, exchange)
        queue = await channel.declare_queue(f"{exchange}.{group}", durable=True)
        for pattern in bindings:
            await queue.bind(events, routing_key=pattern)
        return cls(connection, queue, group)

    async def poll(self, conn: Connection, handler: Handler, *, count: int = 200) -> int:
        """Process up to ``count`` waiting messages in queue order; returns how many ran the handler."""
        handled = 0
        for _ in range(count):
            message = await self.queue.get(no_ack=False, fail=False)
            if message is None:
                break
            async with message.process(requeue=True):  # acks on leaving, after handle_once committed
                if await handle_once(conn, self._group, Event.from_json(message.body), handler):
                    handled += 1
        return handled

    async def close(self) -> None:
        await self._connection.close()


async def consumer_for(settings: Settings, group: str) -> EventConsumer:
    """The consumer group ``group`` on the bus the relay publishes to: RabbitMQ, Redis or PostgreSQL.

    On RabbitMQ the group's queue receives what is published after it was first
    declared; start consumers before (or with) the relay.
    """
    if settings.rabbitmq_url:
        return await RabbitMQConsumer.connect(
            settings.rabbitmq_url, group=group, exchange=settings.rabbitmq_exchange
        )
    if settings.redis_url:
        name = f"{socket.gethostname()}-{os.getpid()}"
        return await RedisStreamConsumer.connect(settings.redis_url, group=group, name=name)
    return PostgresStreamConsumer(group)
