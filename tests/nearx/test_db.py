"""The pool's check: a round trip only for connections idle past the window, and dead ones replaced."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

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
