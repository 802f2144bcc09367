"""Entry points for ``nearx events relay``: one drain, or relay until interrupted."""

from __future__ import annotations

import asyncio
import signal

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.events import repository as repo
from api.domains.events.buses import bus_for
from api.domains.events.relay import Relay, run_relay
from nearx.settings import Settings


async def relay_once(url: str, settings: Settings) -> int:
    """Drain the outbox once (if no other relay holds the lock); returns events published."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        if not await repo.try_relay_lock(conn):
            return 0
        bus = bus_for(settings.redis_url, conn)
        try:
            return await Relay(conn, bus).drain()
        finally:
            await bus.close()
            await repo.release_relay_lock(conn)


async def relay_forever(url: str, settings: Settings) -> int:
    """Relay until SIGINT/SIGTERM; a standby waits while another relay holds the lock."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    return await run_relay(
        url,
        lambda conn: bus_for(settings.redis_url, conn),
        stop=stop,
        interval_s=settings.events_relay_interval_s,
    )
