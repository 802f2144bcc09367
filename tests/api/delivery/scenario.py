"""Shared delivery scenarios: merchant orders ready for pickup, courier fixes, dispatch rounds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import h3
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Role
from nearx.clock import utc_now
from nearx.ids import new_id
from tests.api.delivery.conftest import Actor, MakeUser

Client = AsyncTestClient[Litestar]
KITCHEN = (27.7100, 85.3200)
HOME = (27.7000, 85.3300)


async def merchant_order(
    conn: Any,
    make_user: MakeUser,
    *,
    at: tuple[float, float] = KITCHEN,
    emergency: bool = False,
    category: str = "grocery",
    customer: Actor | None = None,
) -> Any:
    """A merchant order ready for pickup, written straight to the marketplace tables."""
    owner = await make_user(Role.MERCHANT)
    customer = customer or await make_user(Role.CUSTOMER)
    merchant_id, order_id, merchant_order_id = new_id(), new_id(), new_id()
    await conn.execute(
        "INSERT INTO merchants (id, city_id, kind, category, name, owner_user_id, status, lat, lng, h3_r7, "
        "h3_r9) VALUES (%s, 'kathmandu', 'merchant', %s, 'Shop', %s, 'approved', %s, %s, %s, %s)",
        (merchant_id, category, owner.user_id, *at, h3.latlng_to_cell(*at, 7), h3.latlng_to_cell(*at, 9)),
    )
    await conn.execute(
        "INSERT INTO orders (id, customer_id, city_id, currency, delivery_lat, delivery_lng, items_minor, "
        "delivery_fee_minor, tax_minor, discount_minor, total_minor, emergency, emergency_reason) "
        "VALUES (%s, %s, 'kathmandu', 'NPR', %s, %s, 1000, 100, 0, 0, 1100, %s, %s)",
        (order_id, customer.user_id, *HOME, emergency, "insulin" if emergency else None),
    )
    await conn.execute(
        "INSERT INTO merchant_orders (id, parent_id, merchant_id, customer_id, city_id, currency, status, "
        "items_minor, delivery_fee_minor, tax_minor, discount_minor, total_minor, distance_m, emergency, "
        "accept_by) VALUES (%s, %s, %s, %s, 'kathmandu', 'NPR', 'ready_for_pickup', 1000, 100, 0, 0, 1100, "
        "1500, %s, %s)",
        (
            merchant_order_id,
            order_id,
            merchant_id,
            customer.user_id,
            emergency,
            utc_now() + timedelta(minutes=5),
        ),
    )
    return merchant_order_id


async def at_position(
    client: Client, courier: Actor, lat: float, lng: float, *, minutes_ago: float = 0.0
) -> None:
    """One plausible GPS fix (space fixes out in time when the courier moves far between them)."""
    at = utc_now() - timedelta(minutes=minutes_ago)
    fix = {"at": at.isoformat(), "lat": lat, "lng": lng, "accuracy_m": 5}
    response = await client.post("/v1/couriers/me/locations", json={"fixes": [fix]}, headers=courier.headers)
    assert response.status_code == 200, response.text


async def round_now(client: Client, admin: Actor) -> dict[str, Any]:
    response = await client.post(
        "/v1/admin/dispatch/rounds", json={"city_id": "kathmandu"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def offers(client: Client, courier: Actor) -> dict[str, Any]:
    response = await client.get("/v1/couriers/me/offers", headers=courier.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())
