"""Dispatch rounds on a schedule: every few seconds, one round per city with work.

Each API process started by ``nearx serve`` may run the loop; a transaction-scoped
advisory lock per city lets only one of them run a city's round at a time (the
others skip it, they do not queue behind it). A round also expires unanswered
offers and releases stalled couriers, so those happen on the same beat.
``nearx dispatch run`` runs one pass (or the loop) outside the server.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.domains.delivery import repository as repo
from api.domains.delivery import service
from api.domains.delivery.eta import plugged, routing_predictors
from api.domains.delivery.insurance import build_insurer
from api.domains.delivery.safety import CONSUMER, SafetyFollowUp, follow_up_pass
from api.domains.delivery.schemas import RoundReport
from api.domains.events.consumers import consumer_for
from api.domains.notifications.sender import build_sender
from nearx.background import every
from nearx.db import Connection, Pool, create_pool
from nearx.settings import Settings


async def dispatch_pass(
    conn: Connection, *, cities: list[str] | None = None, now: datetime | None = None
) -> dict[str, RoundReport]:
    """One round for each city with open work (or the given cities); cities another process
    is dispatching right now are skipped."""
    reports: dict[str, RoundReport] = {}
    for city_id in cities or await repo.cities_with_open_work(conn):
        async with conn.transaction():
            if not await repo.try_dispatch_lock(conn, city_id):
                continue
            reports[city_id] = await service.run_round(conn, city_id, now=now)
    return reports


@asynccontextmanager
async def delivery_jobs(pool: Pool, settings: Settings) -> AsyncIterator[None]:
    """Everything delivery runs in the background of ``nearx serve``: the dispatch rounds
    (every ``dispatch_interval_s``) and the safety follow-up (support alerts, insurance claims)."""
    handler = SafetyFollowUp(build_sender(settings), build_insurer(settings), settings.support_email)

    async def dispatch() -> None:
        async with pool.connection() as conn:
            await dispatch_pass(conn)

    consumer = await consumer_for(settings, CONSUMER)

    async def follow_up() -> None:
        async with pool.connection() as conn:
            await follow_up_pass(conn, handler, consumer)

    try:
        async with (
            every(settings.dispatch_interval_s, dispatch, name="dispatch-rounds"),
            every(settings.events_relay_interval_s, follow_up, name="delivery-safety"),
        ):
            yield
    finally:
        await consumer.close()


async def run_once(url: str, cities: list[str] | None, settings: Settings) -> dict[str, RoundReport]:
    """``nearx dispatch run``: one pass over a fresh connection, legs priced by the routing provider."""
    with plugged(routing_predictors(settings)):
        async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
            return await dispatch_pass(conn, cities=cities)


async def run_forever(url: str, interval_s: float, settings: Settings) -> None:
    """``nearx dispatch run --every N``: the rounds outside the server, until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pool = create_pool(url, min_size=1, max_size=2, timeout_s=10.0)
    await pool.open(wait=True)

    async def dispatch() -> None:
        async with pool.connection() as conn:
            await dispatch_pass(conn)

    try:
        with plugged(routing_predictors(settings)):
            async with every(interval_s, dispatch, name="dispatch-rounds"):
                await stop.wait()
    finally:
        await pool.close()
