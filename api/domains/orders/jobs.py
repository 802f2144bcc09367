"""Scheduled work on orders: the CLI's one-off sweep and the sweep loop of ``nearx serve``."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.orders.service import expire_stale
from nearx.background import every
from nearx.clock import utc_now
from nearx.db import Pool


async def sweep(url: str) -> int:
    """Cancel every overdue unaccepted order and free expired stock holds; returns orders cancelled."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await expire_stale(conn, utc_now())


def background_sweep(pool: Pool, interval_s: float) -> AbstractAsyncContextManager[None]:
    """Cancel overdue orders every ``interval_s`` (``NEARX_ORDERS_SWEEP_INTERVAL_S``) while serving."""

    async def run() -> int:
        async with pool.connection() as conn:
            return await expire_stale(conn, utc_now())

    return every(interval_s, run, name="orders-sweep")
