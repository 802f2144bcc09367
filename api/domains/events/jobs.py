"""Entry points for ``nearx events relay`` (one drain, or until interrupted) and ``nearx events webhooks``."""

from __future__ import annotations

import asyncio
import signal

import httpx
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.events import repository as repo
from api.domains.events.buses import bus_for
from api.domains.events.consumers import poll_postgres
from api.domains.events.relay import Relay, run_relay
from api.domains.events.webhooks import deliver_pending, fan_out
from nearx.settings import Settings

WEBHOOK_CONSUMER = "webhooks"


async def relay_once(url: str, settings: Settings) -> int:
    """Drain the outbox once (if no other relay holds the lock); returns events published."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        if not await repo.try_relay_lock(conn):
            return 0
        bus = bus_for(settings, conn)
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
        lambda conn: bus_for(settings, conn),
        stop=stop,
        interval_s=settings.events_relay_interval_s,
    )


async def webhooks_once(
    url: str, settings: Settings, client: httpx.AsyncClient | None = None
) -> dict[str, int]:
    """Fan the event stream out to webhook deliveries, then send what is pending."""
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        while await poll_postgres(conn, WEBHOOK_CONSUMER, fan_out):
            pass
        if client is not None:
            return await deliver_pending(conn, client, pepper=settings.pepper)
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
            return await deliver_pending(conn, http, pepper=settings.pepper)
