"""Where the relay publishes: a pluggable event bus.

- :class:`PostgresBus` (the default, no extra service): appends to ``event_stream``
  and NOTIFYs ``nearx_events``; consumers poll by ``seq`` and wake on NOTIFY.
- :class:`RedisStreamsBus` (when ``NEARX_REDIS_URL`` is set): ``XADD`` to one
  stream; consumers read it through a consumer group.
- :class:`RabbitMQBus` (when ``NEARX_RABBITMQ_URL`` is set; it wins over Redis):
  persistent messages to a durable topic exchange, each confirmed by the broker
  before the next is sent; consumers read durable queues bound to it.

All keep the publish order, so events of one aggregate arrive in order. Kafka
would be one more class with the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import aio_pika
import redis.asyncio as redis
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from api.domains.events import repository as repo
from api.domains.events.model import Event
from nearx.db import Connection
from nearx.settings import Settings

DEFAULT_STREAM = "nearx:events"
DEFAULT_EXCHANGE = "nearx.events"


class EventBus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Publish in order; raising means "maybe partly published": the relay retries all."""
        ...

    async def close(self) -> None: ...


class PostgresBus:
    """The stream lives in PostgreSQL; it is deduplicated by event id on append."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def publish(self, events: Sequence[Event]) -> None:
        async with self._conn.transaction():
            await repo.append_to_stream(self._conn, events)
            await repo.notify_stream(self._conn)

    async def close(self) -> None:
        """The connection belongs to the relay."""


class RedisStreamsBus:
    def __init__(self, client: redis.Redis, *, stream: str = DEFAULT_STREAM, maxlen: int = 1_000_000) -> None:
        self._client = client
        self.stream = stream
        self._maxlen = maxlen

    @classmethod
    def from_url(cls, url: str, *, stream: str = DEFAULT_STREAM) -> RedisStreamsBus:
        return cls(redis.Redis.from_url(url), stream=stream)

    async def publish(self, events: Sequence[Event]) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            for event in events:
                pipe.xadd(
                    self.stream,
                    {
                        "event_id": str(event.event_id),
                        "event_type": event.event_type,
                        "event": event.to_json(),
                    },
                    maxlen=self._maxlen,
                    approximate=True,
                )
            await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()


def unrouted_queue(exchange: str) -> str:
    """Where the exchange's alternate exchange keeps events no consumer queue is bound for."""
    return f"{exchange}.unrouted"


async def declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    """Declare the durable topic exchange, with an alternate exchange so nothing unroutable is dropped.

    An event type no consumer queue binds lands in the durable ``<name>.unrouted``
    queue instead of vanishing; publishing stays ``mandatory``, so should even
    that be missing the broker returns the message and the publish raises.
    Publisher and consumers both declare it (declaring is idempotent), so
    neither depends on the other starting first.
    """
    fallback = unrouted_queue(name)
    unrouted = await channel.declare_exchange(fallback, aio_pika.ExchangeType.FANOUT, durable=True)
    await (await channel.declare_queue(fallback, durable=True)).bind(unrouted)
    return await channel.declare_exchange(
        name, aio_pika.ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": fallback}
    )


class RabbitMQBus:
    """Persistent messages to a durable topic exchange, routing key = event type.

    The channel uses publisher confirms, and each message is published only after
    the broker confirmed the previous one, so a raised error means "this one and
    the rest may be missing" (the relay retries the batch, consumers deduplicate)
    and the order of the batch — per aggregate, the outbox order — is the order
    in every queue. The connection opens on the first publish, because the relay
    builds its bus synchronously.
    """

    def __init__(self, url: str, *, exchange: str = DEFAULT_EXCHANGE) -> None:
        self._url = url
        self.exchange_name = exchange
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def _ready(self) -> AbstractExchange:
        if self._exchange is None:
            self._connection = await aio_pika.connect(self._url)
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await declare_exchange(channel, self.exchange_name)
        return self._exchange

    async def publish(self, events: Sequence[Event]) -> None:
        exchange = await self._ready()
        for event in events:
            message = aio_pika.Message(
                event.to_json(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(event.event_id),
                type=event.event_type,
                timestamp=event.occurred_at,
                headers={"aggregate_id": str(event.aggregate_id), "schema_version": event.schema_version},
            )
            await exchange.publish(message, routing_key=event.event_type, mandatory=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._exchange = None


def bus_for(settings: Settings, conn: Connection) -> EventBus:
    """RabbitMQ, else Redis Streams, when configured; the PostgreSQL bus otherwise."""
    if settings.rabbitmq_url:
        return RabbitMQBus(settings.rabbitmq_url, exchange=settings.rabbitmq_exchange)
    if settings.redis_url:
        return RedisStreamsBus.from_url(settings.redis_url)
    return PostgresBus(conn)
