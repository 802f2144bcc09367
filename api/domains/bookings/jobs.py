"""Scheduled work on bookings, callable from the CLI or any scheduler."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.bookings.service import release_expired_holds
from nearx.clock import utc_now


async def sweep(url: str) -> int:
    """Release every hold nobody confirmed in time; returns how many."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await release_expired_holds(conn, utc_now())
