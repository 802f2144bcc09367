"""Helpers shared by the event tests: seeding the outbox, bus doubles, a crash mid-batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika

from api.domains.events.buses import EventBus
from api.domains.events.model import Event
from nearx.outbox import append_event


class Crash(Exception):
    """Stands for the relay process dying mid-batch (nothing after it runs)."""


class RecordingBus:
    """A bus double that keeps every delivery, duplicates included."""

    def __init__(self) -> None:
        self.delivered: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> None:
        self.delivered.extend(events)

    async def close(self) -> None:
        pass


class DiesAfter:
    """Publishes event by event through ``inner`` and crashes after ``n`` of them."""

    def __init__(self, inner: EventBus, n: int) -> None:
        self.inner, self.n = inner, n

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events[: self.n]:
            await self.inner.publish([event])
        raise Crash

    async def close(self) -> None:
        pass


async def append(conn: Any, aggregate: uuid.UUID, verb: str, n: int) -> None:
    async with conn.transaction():
        await append_event(
            conn,
            event_type=f"thing.{verb}",
            aggregate_type="thing",
            aggregate_id=aggregate,
            payload={"n": n},
            city_id="kathmandu",
        )


async def seed(conn: Any, aggregates: int = 3, per_aggregate: int = 4) -> list[uuid.UUID]:
    """Interleave ``per_aggregate`` numbered changes of each aggregate; returns the aggregate ids."""
    ids = [uuid.uuid4() for _ in range(aggregates)]
    for step in range(per_aggregate):
        for aggregate in ids:
            await append(conn, aggregate, "changed", step)
    return ids


async def unpublished(conn: Any) -> int:
    row = await (await conn.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")).fetchone()
    return int(row["n"])


async def queue_depth(url: str, queue: str) -> int:
    """Messages waiting in a RabbitMQ queue (ready, not yet delivered or acknowledged)."""
    async with await aio_pika.connect(url) as connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count
