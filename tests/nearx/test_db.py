"""The pool's check: a round trip only for connections idle past the window, and dead ones replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from nearx.db import RecentUseCheck, create_pool


async def _terminate(admin_url: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_connection_idle_past_the_window_is_checked_and_replaced_when_dead(db_url: str) -> None:
    pool = create_pool(db_url, min_size=1, max_size=1, timeout_s=10.0, recent_s=0.0)
    async with pool:
        await pool.wait()
        async with pool.connection() as conn:
            before = conn.info.backend_pid
        await _terminate(db_url, before)
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
        assert row is not None
        assert row["pid"] != before


async def test_a_connection_returned_within_the_window_is_lent_without_a_round_trip(db_url: str) -> None:
    check = RecentUseCheck(recent_s=60.0)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        await _terminate(db_url, conn.info.backend_pid)
        await check.returned(conn)
        await check.check(conn)  # no round trip, so the dead backend goes unseen
        with pytest.raises(psycopg.OperationalError):
            await check.check(conn)  # each return stamps one checkout only


async def test_a_connection_never_returned_is_checked(db_url: str) -> None:
    check = RecentUseCheck(recent_s=60.0)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        await _terminate(db_url, conn.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            await check.check(conn)


async def test_pooled_connections_read_and_write_json_through_msgspec(db_url: str) -> None:
    pool = create_pool(db_url, min_size=1, max_size=1, timeout_s=10.0)
    async with pool, pool.connection() as conn:
        payload = {"id": uuid.UUID(int=7), "at": datetime(2026, 12, 1, tzinfo=UTC), "n": [1, 2.5, None]}
        row = await (await conn.execute("SELECT %s::jsonb AS doc", (Jsonb(payload),))).fetchone()
    assert row == {"doc": {"id": str(uuid.UUID(int=7)), "at": "2026-12-01T00:00:00Z", "n": [1, 2.5, None]}}
