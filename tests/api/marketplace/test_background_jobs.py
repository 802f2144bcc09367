"""Expiry without a cron: ``nearx serve`` runs the order and booking sweeps in the background.

The app is built with ``run_sweeps=True`` and short intervals; each test moves a
deadline into the past and waits, boundedly, for the background task to act.
(The webhook loop it also runs is tested in ``test_webhooks.py``.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from nearx.clock import utc_now
from nearx.settings import Settings, load_settings
from tests.api.marketplace.conftest import MakeMerchant, MakeProduct, MakeUser

HOME = {"lat": 27.701, "lng": 85.321}
BOUND_S = 30.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {
            "NEARX_HOME": str(tmp_path / "nearx"),
            "NEARX_DB_POOL_MAX_SIZE": "20",
            "NEARX_ORDERS_SWEEP_INTERVAL_S": "0.1",
            "NEARX_BOOKINGS_SWEEP_INTERVAL_S": "0.1",
            "NEARX_WEBHOOKS_INTERVAL_S": "0.1",
        }
    )


@pytest.fixture
def app(settings: Settings, db_url: str) -> Litestar:
    """The app as ``nearx serve`` builds it, sweeps included."""
    return create_app(settings, db_url=db_url, run_sweeps=True)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def _order(
    client: AsyncTestClient[Litestar], make_user: MakeUser, variant_id: str, quantity: int = 1
) -> dict[str, Any]:
    customer = await make_user()
    response = await client.post(
        "/v1/orders",
        json={"items": [{"variant_id": variant_id, "quantity": quantity}], "delivery": HOME},
        headers={**customer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    child: dict[str, Any] = response.json()["merchant_orders"][0]
    return child


async def test_the_server_cancels_an_overdue_order_and_frees_its_stock(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
) -> None:
    owner, merchant = await make_merchant()
    variant = (await make_product(owner, merchant))["variants"][0]["id"]
    child = await _order(client, make_user, variant, quantity=4)
    fresh = await _order(client, make_user, variant, quantity=1)
    await conn.execute(
        "UPDATE merchant_orders SET accept_by = now() - interval '1 second' WHERE id = %s", (child["id"],)
    )

    async def cancelled() -> bool:
        row = await (
            await conn.execute("SELECT status FROM merchant_orders WHERE id = %s", (child["id"],))
        ).fetchone()
        return bool(row["status"] == "cancelled")

    await eventually(cancelled, "the background sweep to cancel the overdue order")
    rows = await (
        await conn.execute(
            "SELECT id, status, cancelled_by FROM merchant_orders WHERE id = ANY(%s)",
            ([child["id"], fresh["id"]],),
        )
    ).fetchall()
    assert {str(r["id"]): (r["status"], r["cancelled_by"]) for r in rows} == {
        child["id"]: ("cancelled", "system"),
        fresh["id"]: ("placed", None),  # not overdue: untouched
    }
    stock = await (
        await conn.execute("SELECT reserved FROM inventory WHERE variant_id = %s", (variant,))
    ).fetchone()
    assert stock["reserved"] == 1  # only the fresh order still holds units


async def test_the_server_releases_an_expired_booking_hold(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser, conn: Any
) -> None:
    owner, provider = await make_merchant(kind="provider", category="plumber", name="Pipes")
    service = await client.post(
        f"/v1/merchants/{provider['id']}/services",
        json={"name": "Fix a tap", "duration_min": 60, "price_minor": 150_000, "deposit_minor": 20_000},
        headers=owner.headers,
    )
    calendar = {"availability": [{"weekday": d, "starts": "09:00:00", "ends": "17:00:00"} for d in range(7)]}
    await client.put(f"/v1/providers/{provider['id']}/calendar", json=calendar, headers=owner.headers)
    zone = ZoneInfo("Asia/Kathmandu")
    day = (utc_now().astimezone(zone) + timedelta(days=7)).date()
    customer = await make_user()
    held = await client.post(
        "/v1/bookings",
        json={
            "service_id": service.json()["id"],
            "starts_at": datetime.combine(day, time(10), zone).isoformat(),
        },
        headers={**customer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert held.status_code == 201, held.text
    await conn.execute("UPDATE bookings SET hold_expires_at = now() - interval '1 second'")

    async def released() -> bool:
        row = await (
            await conn.execute("SELECT status FROM bookings WHERE id = %s", (held.json()["id"],))
        ).fetchone()
        return bool(row["status"] == "released")

    await eventually(released, "the background sweep to release the hold")
    history = await (
        await conn.execute(
            "SELECT actor_kind, reason FROM booking_status_history "
            "WHERE to_status = 'released' AND booking_id = %s",
            (held.json()["id"],),
        )
    ).fetchall()
    assert [(h["actor_kind"], h["reason"]) for h in history] == [("system", "hold expired")]
