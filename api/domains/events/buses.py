"""Where the relay publishes: a pluggable event bus.

- :class:`PostgresBus` (the default, no extra service): appends to ``event_stream``
  and NOTIFYs ``nearx_events``; consumers poll by ``seq`` and wake on NOTIFY.
- :class:`RedisStreamsBus` (when ``NEARX_REDIS_URL`` is set): ``XADD`` to one
  stream; consumers read it through a consumer group.

Both keep the publish order, so events of one aggregate arrive in order.
RabbitMQ/Kafka would be one more class with the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as redis

from api.domains.events import repository as repo
from api.domains.events.model import Event
from nearx.db import Connection

DEFAULT_STREAM = "nearx:events"


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


def bus_for(redis_url: str | None, conn: Connection) -> EventBus:
    """Redis Streams when a Redis URL is configured, else the PostgreSQL bus."""
    if redis_url:
        return RedisStreamsBus.from_url(redis_url)
    return PostgresBus(conn)
