"""The outbox relay: publishes committed events at least once, in order per aggregate.

Only one relay is active at a time (a session advisory lock; others stand by),
so the bus sees one ordered feed. Each round reads the oldest *unpublished*
rows by position, publishes them, then marks them published. A relay killed
between publishing and marking republishes those events on restart: consumers
deduplicate by event id. There is no "last position" high-water mark, because
identity positions can commit out of order (a slow transaction holding
position 5 commits after position 6 was published); a high-water mark would
skip it forever. Events of one aggregate cannot interleave that way: every
state change locks its aggregate row before appending, so its positions follow
commit order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row

from api.domains.events import repository as repo
from api.domains.events.buses import EventBus, bus_for
from api.domains.events.model import Event
from nearx.db import Connection
from nearx.settings import Settings

log = logging.getLogger(__name__)

BusFactory = Callable[[Connection], EventBus]


class Relay:
    def __init__(self, conn: Connection, bus: EventBus, *, batch_size: int = 200) -> None:
        self._conn = conn
        self._bus = bus
        self._batch_size = batch_size

    async def publish_batch(self) -> int:
        rows = await repo.unpublished(self._conn, self._batch_size)
        if not rows:
            return 0
        await self._bus.publish([Event.from_row(row) for row in rows])
        async with self._conn.transaction():
            await repo.mark_published(self._conn, [row["position"] for row in rows])
        return len(rows)

    async def drain(self) -> int:
        """Publish until the outbox has nothing unpublished; returns how many went out."""
        total = 0
        while published := await self.publish_batch():
            total += published
        return total


async def _connect(url: str) -> AsyncConnection[DictRow]:
    return await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


async def run_relay(
    url: str, make_bus: BusFactory, *, stop: asyncio.Event, interval_s: float = 1.0, batch_size: int = 200
) -> int:
    """Relay until ``stop`` is set: drain, then sleep until NOTIFY or ``interval_s`` (polling fallback)."""
    published = 0
    async with await _connect(url) as conn, await _connect(url) as listener:
        await listener.execute("LISTEN nearx_outbox")
        bus = make_bus(conn)
        try:
            while not stop.is_set():
                if not await repo.try_relay_lock(conn):
                    await _sleep(stop, interval_s)  # another relay is active: stand by
                    continue
                try:
                    relay = Relay(conn, bus, batch_size=batch_size)
                    while not stop.is_set():
                        published += await relay.drain()
                        async for _ in listener.notifies(timeout=interval_s, stop_after=1):
                            pass
                finally:
                    await repo.release_relay_lock(conn)
        finally:
            await bus.close()
    return published


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@asynccontextmanager
async def background_relay(url: str, settings: Settings) -> AsyncIterator[asyncio.Task[int]]:
    """Run the relay as a task for the lifetime of the block (``nearx serve`` does this)."""
    stop = asyncio.Event()

    def make_bus(conn: Connection) -> EventBus:
        return bus_for(settings, conn)

    task = asyncio.create_task(
        _supervised(url, make_bus, stop, settings.events_relay_interval_s), name="outbox-relay"
    )
    try:
        yield task
    finally:
        stop.set()
        await task


async def _supervised(url: str, make_bus: BusFactory, stop: asyncio.Event, interval_s: float) -> int:
    """Keep the relay alive across database hiccups; it resumes from the outbox."""
    published = 0
    while not stop.is_set():
        try:
            published += await run_relay(url, make_bus, stop=stop, interval_s=interval_s)
        except Exception:
            log.exception("outbox relay failed; restarting")
            await _sleep(stop, interval_s)
    return published
