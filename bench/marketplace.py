"""Marketplace: checkout throughput (concurrent vs serial) and relay throughput (PostgreSQL bus vs in memory).

Runs against a throwaway database on ``NEARX_DATABASE_URL`` (or the embedded
server), migrated from scratch and dropped afterwards. Checkouts go through
``orders.service.checkout`` (server pricing, stock reservation, events,
idempotency) on a connection pool, without HTTP.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.result import Result
from nearx.db import Connection


async def _seed(conn: Connection, customers: int) -> tuple[list[uuid.UUID], uuid.UUID]:
    from nearx.ids import new_id

    owner = new_id()
    await conn.execute("INSERT INTO users (id) VALUES (%s)", (owner,))
    merchant, product, variant = new_id(), new_id(), new_id()
    await conn.execute(
        """
        INSERT INTO merchants
            (id, city_id, kind, category, name, owner_user_id, status, lat, lng, h3_r7, h3_r9)
        VALUES (%s, 'kathmandu', 'merchant', 'food', 'Bench', %s, 'approved', 27.7, 85.32, 'x', 'y')
        """,
        (merchant, owner),
    )
    await conn.execute(
        "INSERT INTO products (id, merchant_id, city_id, name, category) "
        "VALUES (%s, %s, 'kathmandu', 'Momo', 'food')",
        (product, merchant),
    )
    await conn.execute(
        """
        INSERT INTO product_variants (id, product_id, merchant_id, city_id, sku, name, price_minor, currency)
        VALUES (%s, %s, %s, 'kathmandu', 'm', 'plate', 25000, 'NPR')
        """,
        (variant, product, merchant),
    )
    await conn.execute(
        "INSERT INTO inventory (variant_id, merchant_id, city_id, on_hand) "
        "VALUES (%s, %s, 'kathmandu', 1000000)",
        (variant, merchant),
    )
    users = [new_id() for _ in range(customers)]
    async with conn.cursor() as cursor:
        await cursor.executemany("INSERT INTO users (id) VALUES (%s)", [(u,) for u in users])
    return users, variant


async def _checkouts(url: str, users: Sequence[uuid.UUID], variant: uuid.UUID, concurrency: int) -> float:
    from api.domains.orders.schemas import CartItem, CheckoutInput, DeliveryPoint
    from api.domains.orders.service import checkout
    from api.security.principal import Principal, Role
    from nearx.db import create_pool
    from nearx.ids import new_id
    from nearx.settings import load_settings

    settings = load_settings({})
    pool = create_pool(url, min_size=concurrency, max_size=concurrency, timeout_s=30)
    await pool.open(wait=True)
    gate = asyncio.Semaphore(concurrency)
    body = CheckoutInput(
        items=[CartItem(variant_id=variant, quantity=1)], delivery=DeliveryPoint(lat=27.701, lng=85.321)
    )

    async def one(user: uuid.UUID) -> None:
        principal = Principal(user_id=user, roles=frozenset({Role.CUSTOMER}), session_id=new_id())
        async with gate, pool.connection() as conn:
            status, _ = await checkout(conn, principal, body, key=uuid.uuid4().hex, settings=settings)
            assert status == 201

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(user) for user in users))
        return time.perf_counter() - started
    finally:
        await pool.close()


async def _relay(url: str, events: int) -> tuple[float, float]:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from api.domains.events.buses import PostgresBus
    from api.domains.events.relay import Relay
    from nearx.ids import new_id
    from nearx.outbox import append_event

    class MemoryBus:
        async def publish(self, batch: Sequence[object]) -> None:
            pass

        async def close(self) -> None:
            pass

    timings = []
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for bus in (PostgresBus(conn), MemoryBus()):
            await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            for start in range(0, events, 100):
                async with conn.transaction():
                    for n in range(start, min(start + 100, events)):
                        await append_event(
                            conn,
                            event_type="bench.happened",
                            aggregate_type="bench",
                            aggregate_id=new_id(),
                            payload={"n": n},
                            city_id="kathmandu",
                        )
            started = time.perf_counter()
            assert await Relay(conn, bus).drain() == events
            timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


async def _run(quick: bool, migrations: Path) -> list[Result]:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from nearx.migrations import migrate
    from nearx.postgres import database_url, drop_database, ensure_database, with_database
    from nearx.settings import get_settings

    checkouts, events = (100, 1_000) if quick else (1_000, 20_000)
    settings = get_settings()
    results: list[Result] = []
    with database_url(settings.database_url, settings.embedded_pg_dir) as admin:
        name = f"nearx_bench_{uuid.uuid4().hex[:8]}"
        ensure_database(admin, name)
        url = with_database(admin, name)
        try:
            migrate(url, migrations)
            async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
                users, variant = await _seed(conn, 2 * checkouts)
            serial = await _checkouts(url, users[:checkouts], variant, 1)
            parallel = await _checkouts(url, users[checkouts:], variant, 8)
            results.append(
                Result(
                    "marketplace",
                    f"{checkouts} checkouts",
                    "checkouts/s, 8 concurrent",
                    checkouts / parallel,
                    "/s",
                    "serial",
                    checkouts / serial,
                    lower_is_better=False,
                )
            )
            pg_bus, memory_bus = await _relay(url, events)
            results.append(
                Result(
                    "marketplace",
                    f"relay {events} events",
                    "events/s, PostgreSQL bus",
                    events / pg_bus,
                    "/s",
                    "in-memory bus",
                    events / memory_bus,
                    lower_is_better=False,
                )
            )
        finally:
            drop_database(admin, name)
    return results


def run(quick: bool) -> list[Result]:
    import api

    return asyncio.run(_run(quick, Path(api.__file__).resolve().parent / "migrations"))
