"""Entry points for ``nearx events relay`` (one drain, or until interrupted), ``nearx events webhooks``,
and the webhook loop of ``nearx serve``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.events import repository as repo
from api.domains.events.buses import bus_for
from api.domains.events.consumers import EventConsumer, consumer_for
from api.domains.events.relay import Relay, run_relay
from api.domains.events.webhooks import deliver_pending, fan_out
from nearx.background import every
from nearx.db import Connection, Pool
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


def _http() -> httpx.AsyncClient:
    """The client webhooks are posted with: a bounded timeout, and redirects are not followed."""
    return httpx.AsyncClient(timeout=10.0, follow_redirects=False)


async def _webhooks_round(
    conn: Connection, events: EventConsumer, client: httpx.AsyncClient, pepper: str
) -> dict[str, int]:
    while await events.poll(conn, fan_out):
        pass
    return await deliver_pending(conn, client, pepper=pepper)


async def webhooks_once(
    url: str, settings: Settings, client: httpx.AsyncClient | None = None
) -> dict[str, int]:
    """Fan the bus's events out to webhook deliveries, then send what is pending."""
    async with AsyncExitStack() as stack:
        conn = await stack.enter_async_context(
            await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
        )
        events = await consumer_for(settings, WEBHOOK_CONSUMER)
        stack.push_async_callback(events.close)
        http = client if client is not None else await stack.enter_async_context(_http())
        return await _webhooks_round(conn, events, http, settings.pepper)


@asynccontextmanager
async def background_webhooks(
    pool: Pool, settings: Settings, client: httpx.AsyncClient | None = None
) -> AsyncIterator[None]:
    """Fan out and send webhooks every ``NEARX_WEBHOOKS_INTERVAL_S`` while the server runs."""
    async with AsyncExitStack() as stack:
        http = client if client is not None else await stack.enter_async_context(_http())
        events = await consumer_for(settings, WEBHOOK_CONSUMER)
        stack.push_async_callback(events.close)

        async def run() -> dict[str, int]:
            async with pool.connection() as conn:
                return await _webhooks_round(conn, events, http, settings.pepper)

        async with every(settings.webhooks_interval_s, run, name="webhooks"):
            yield
