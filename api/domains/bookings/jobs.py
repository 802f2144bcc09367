"""Scheduled work on bookings: the CLI's one-off sweep and the sweep loop of ``nearx serve``."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.bookings.service import release_expired_holds
from nearx.background import every
from nearx.clock import utc_now
from nearx.db import Pool


async def sweep(url: str) -> int:
    """Release every hold nobody confirmed in time; returns how many."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await release_expired_holds(conn, utc_now())


def background_sweep(pool: Pool, interval_s: float) -> AbstractAsyncContextManager[None]:
    """Release expired holds every ``interval_s`` (``NEARX_BOOKINGS_SWEEP_INTERVAL_S``) while serving."""

    async def run() -> int:
        async with pool.connection() as conn:
            return await release_expired_holds(conn, utc_now())

    return every(interval_s, run, name="bookings-sweep")
