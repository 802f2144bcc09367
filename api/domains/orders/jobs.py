"""Scheduled work on orders, callable from the CLI or any scheduler."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.orders.service import expire_stale
from nearx.clock import utc_now


async def sweep(url: str) -> int:
    """Cancel every overdue unaccepted order and free expired stock holds; returns orders cancelled."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await expire_stale(conn, utc_now())
