"""Standalone events written in batches, off the request path.

A standalone event is one that *is* the whole change (``match.served`` logs what a customer
was shown and writes nothing else), so nothing has to commit with it. On the hottest path
of the API its own INSERT was one of the request's database round trips; here a request
only appends the event's row to a buffer, and one background task writes every row
buffered so far in one transaction (``executemany``, pipelined), every ``flush_interval_s``
or as soon as ``max_batch`` rows wait.

What is traded, and the bounds:
- Visibility: a buffered event reaches the outbox within ``flush_interval_s`` (20 ms by
  default). A reader in this process that needs it at once calls :meth:`EventBuffer.flush`
  first (a click on a served match does; an empty buffer makes that free).
- Durability: a process killed without its shutdown loses at most what it buffered in
  the last interval. A clean stop flushes. The outbox's guarantees hold from the INSERT on.
- A failing write keeps its rows, in order, and retries on the next round; past
  ``max_pending`` rows (the database down for a long while) the oldest are dropped and
  counted in :attr:`EventBuffer.dropped` and the log, so memory stays bounded. A row the
  database refuses (a constraint) is dropped alone, with an error in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from nearx.clock import utc_now
from nearx.db import Connection, Pool
from nearx.outbox import EventRow

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.02
DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_PENDING = 50_000

_BufferedRow = tuple[uuid.UUID, str, int, str, uuid.UUID, str | None, Jsonb, datetime]
"""An :func:`~nearx.outbox.event_row` and the time it was appended."""
_INSERT_BUFFERED = """
    INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                        city_id, payload, occurred_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (event_id) DO NOTHING
"""
"""``occurred_at`` is when the request appended it, not when the batch was written; a retry of a
batch whose commit was in fact made (the answer lost with the connection) writes nothing twice."""


class EventBuffer:
    def __init__(
        self,
        pool: Pool,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.pool = pool
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.dropped = 0
        """Events dropped because ``max_pending`` rows were already waiting (never otherwise)."""
        self._rows: deque[_BufferedRow] = deque()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._rows)

    @property
    def idle(self) -> bool:
        """Nothing buffered and no write in flight: every event appended so far is in the outbox."""
        return not self._rows and not self._lock.locked()

    def append(self, row: EventRow) -> None:
        """Buffer one standalone event (an :func:`~nearx.outbox.event_row`, which checked its
        name); no I/O."""
        self._rows.append((*row, utc_now()))
        self._trim()
        if len(self._rows) >= self.max_batch:
            self._wake.set()

    async def flush(self, conn: Connection | None = None) -> int:
        """Write every buffered row now, in one transaction; how many were written.

        Concurrent calls write one after the other, so when a flush returns, every event
        appended before it was called is in the outbox (or the write raised, and the rows
        wait for the next try). A batch the database refuses as data (a row breaking a
        constraint) is written row by row instead, and only the refused rows are dropped, so
        one bad event cannot hold back the rest.

        A flush that finds the buffer empty while another one is writing waits for that one:
        the rows it took were appended before this call.

        ``conn``: a request's own idle connection to write on. A flush has its connection
        before it waits for another flush to end: requests waiting here already hold theirs,
        so one that waited for a pool connection while holding the lock could starve on them.
        """
        if self.idle:
            return 0  # nothing buffered and nothing being written: nothing to wait for
        if conn is None:
            async with self.pool.connection() as pooled:
                return await self._flush_on(pooled)
        return await self._flush_on(conn)

    async def _flush_on(self, conn: Connection) -> int:
        async with self._lock:
            batch = list(self._rows)
            self._rows.clear()
            if not batch:
                return 0
            try:
                await _insert(conn, batch)
            except psycopg.errors.IntegrityError:
                return await self._write_one_by_one(conn, batch)
            except BaseException:  # kept in order, before what was appended meanwhile
                self._rows.extendleft(reversed(batch))
                self._trim()
                raise
            return len(batch)

    async def _write_one_by_one(self, conn: Connection, rows: list[_BufferedRow]) -> int:
        written = 0
        for i, row in enumerate(rows):
            try:
                await _insert(conn, [row])
                written += 1
            except psycopg.errors.IntegrityError as exc:
                self.dropped += 1
                log.error("dropped buffered event %s (%s): %s", row[0], row[1], exc)
            except BaseException:  # the rest wait for the next try, as a failed batch does
                self._rows.extendleft(reversed(rows[i:]))
                self._trim()
                raise
        return written

    def _trim(self) -> None:
        while len(self._rows) > self.max_pending:
            row = self._rows.popleft()
            self.dropped += 1
            log.warning("event buffer full (%d rows): dropped event %s (%s)", self.max_pending, *row[:2])

    async def run(self) -> None:
        """Flush every interval (sooner when a batch is full) until cancelled; a failed write retries."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep the rows; the next round retries
                log.exception("writing %d buffered events failed; retrying", self.pending)
                await asyncio.sleep(min(1.0, 10 * self.flush_interval_s))


async def _insert(conn: Connection, rows: list[_BufferedRow]) -> None:
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(_INSERT_BUFFERED, rows)


@contextlib.asynccontextmanager
async def running_event_buffer(pool: Pool, **options: Any) -> AsyncIterator[EventBuffer]:
    """A buffer whose rows a background task writes, flushed once more when the block ends."""
    buffer = EventBuffer(pool, **options)
    task = asyncio.get_running_loop().create_task(buffer.run(), name="event-buffer")
    try:
        yield buffer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await buffer.flush()
        except Exception:
            log.exception("the last flush of %d buffered events failed; they are lost", buffer.pending)
