"""The event buffer writes standalone events in batches, in order, and loses none it can write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from nearx.db import Pool, create_pool
from nearx.event_buffer import EventBuffer, running_event_buffer
from nearx.ids import new_id
from nearx.outbox import event_row

Conn = psycopg.AsyncConnection[dict[str, Any]]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Pool]:
    pool = create_pool(db_url, min_size=1, max_size=2, timeout_s=10.0)
    await pool.open(wait=True)
    yield pool
    await pool.close()


def _served(buffer: EventBuffer, n: int, city_id: str | None = None) -> list[Any]:
    aggregate = new_id()
    rows = [
        event_row(
            event_type="match.served",
            aggregate_type="match",
            aggregate_id=aggregate,
            payload={"n": i},
            city_id=city_id,
        )
        for i in range(n)
    ]
    for row in rows:
        buffer.append(row)
    return [row[0] for row in rows]


async def _outbox(conn: Conn) -> list[dict[str, Any]]:
    return await (
        await conn.execute("SELECT event_id, payload, occurred_at FROM outbox ORDER BY position")
    ).fetchall()


async def test_appended_events_reach_the_outbox_only_when_flushed_and_in_order(
    pool: Pool, conn: Conn
) -> None:
    buffer = EventBuffer(pool)
    ids = _served(buffer, 3)
    assert buffer.pending == 3
    assert await _outbox(conn) == []  # appending does no I/O
    assert await buffer.flush() == 3
    rows = await _outbox(conn)
    assert [r["event_id"] for r in rows] == ids
    assert [r["payload"] for r in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert buffer.pending == 0
    assert await buffer.flush() == 0


async def test_occurred_at_is_when_the_event_was_appended_not_written(pool: Pool, conn: Conn) -> None:
    buffer = EventBuffer(pool)
    _served(buffer, 1)
    appended = buffer._rows[0][-1]
    await conn.execute("SELECT pg_sleep(0.05)")
    await buffer.flush()
    (row,) = await _outbox(conn)
    assert row["occurred_at"] == appended


async def test_a_failed_write_keeps_the_rows_in_order_for_the_next_try(pool: Pool, conn: Conn) -> None:
    buffer = EventBuffer(pool)
    first = _served(buffer, 2)
    await conn.execute("ALTER TABLE outbox RENAME TO outbox_away")
    with pytest.raises(psycopg.errors.UndefinedTable):
        await buffer.flush()
    later = _served(buffer, 1)
    await conn.execute("ALTER TABLE outbox_away RENAME TO outbox")
    assert await buffer.flush() == 3
    assert [r["event_id"] for r in await _outbox(conn)] == [*first, *later]


async def test_a_row_the_database_refuses_is_dropped_alone(pool: Pool, conn: Conn) -> None:
    buffer = EventBuffer(pool)
    good = _served(buffer, 1)
    _served(buffer, 1, city_id="atlantis")  # no such city: the foreign key refuses it
    good += _served(buffer, 1)
    assert await buffer.flush() == 2
    assert [r["event_id"] for r in await _outbox(conn)] == good
    assert buffer.dropped == 1


async def test_past_max_pending_the_oldest_are_dropped_and_counted(pool: Pool, conn: Conn) -> None:
    buffer = EventBuffer(pool, max_pending=2)
    ids = _served(buffer, 3)
    assert buffer.pending == 2
    assert buffer.dropped == 1
    await buffer.flush()
    assert [r["event_id"] for r in await _outbox(conn)] == ids[1:]


async def test_retrying_a_batch_that_was_in_fact_committed_writes_nothing_twice(
    pool: Pool, conn: Conn
) -> None:
    buffer = EventBuffer(pool)
    ids = _served(buffer, 2)
    rows = list(buffer._rows)
    await buffer.flush()
    buffer._rows.extend(rows)  # as if the commit's answer had been lost and the batch kept
    await buffer.flush()
    assert [r["event_id"] for r in await _outbox(conn)] == ids


async def test_the_running_buffer_writes_a_full_batch_without_waiting_for_the_interval(
    pool: Pool, conn: Conn
) -> None:
    async with running_event_buffer(pool, flush_interval_s=3600.0, max_batch=2) as buffer:
        ids = _served(buffer, 2)
        async with asyncio.timeout(10):  # far from the hour-long interval
            while len(await _outbox(conn)) < 2:  # noqa: ASYNC110 (polls the database: no event to await)
                await asyncio.sleep(0.01)
        assert [r["event_id"] for r in await _outbox(conn)] == ids


async def test_stopping_the_running_buffer_flushes_what_is_left(pool: Pool, conn: Conn) -> None:
    async with running_event_buffer(pool, flush_interval_s=3600.0) as buffer:
        ids = _served(buffer, 3)
        assert await _outbox(conn) == []
    assert [r["event_id"] for r in await _outbox(conn)] == ids


async def test_a_flush_on_the_callers_connection_needs_none_from_the_pool(db_url: str, conn: Conn) -> None:
    small = create_pool(db_url, min_size=1, max_size=1, timeout_s=1.0)
    await small.open(wait=True)
    try:
        buffer = EventBuffer(small)
        ids = _served(buffer, 2)
        async with small.connection() as held:  # a request's own: the pool has none left to lend
            assert await buffer.flush(held) == 2
        assert [r["event_id"] for r in await _outbox(conn)] == ids
    finally:
        await small.close()


async def test_a_flush_while_another_is_writing_returns_only_once_those_rows_are_in(
    pool: Pool, conn: Conn, db_url: str
) -> None:
    buffer = EventBuffer(pool)
    ids = _served(buffer, 2)
    async with await psycopg.AsyncConnection.connect(db_url) as blocker:
        await blocker.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")  # the first write waits on it
        first = asyncio.create_task(buffer.flush())
        async with asyncio.timeout(10):
            while buffer.pending:  # noqa: ASYNC110 (the first flush takes the rows, then blocks)
                await asyncio.sleep(0.01)
        second = asyncio.create_task(buffer.flush())  # finds the buffer empty
        await asyncio.sleep(0.1)
        assert not second.done()  # it waits for the write in flight
        await blocker.rollback()  # releases the table
    await second
    assert [r["event_id"] for r in await _outbox(conn)] == ids  # in when the second flush returned
    assert await first == 2
