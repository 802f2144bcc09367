"""Who may reach what: a table-driven matrix over roles and the routes that exist.

The generic halves enumerate ``app.routes``, so every route another team adds
later is covered without editing this file: each non-public route refuses an
anonymous or forged caller with a 401 problem, and each ``/v1/admin`` route
refuses non-staff roles and staff without a second factor with a 403. The
explicit half proves a customer cannot reach another user's profile data, orders,
bookings or payments, and merchant staff cannot reach another merchant's orders,
refunds or webhooks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.demo.records import DemoCity, DemoCustomer, DemoMerchant, DemoProvider
from api.demo.service import seed_city
from api.security.principal import Role
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.postgres import drop_database, ensure_database, with_database
from nearx.settings import Settings, load_settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

MIDDLEWARE_EXCLUDED = re.compile(r"^/schema|^/healthz$")
_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_SAMPLE_BY_TYPE = {"uuid": "0190b5d2-6f00-7000-8000-000000000001", "int": "1", "str": "x", "path": "x"}
NON_STAFF = (Role.CUSTOMER, Role.MERCHANT, Role.PROVIDER, Role.COURIER)


def _concrete(path: str) -> str:
    return _PATH_PARAM.sub(lambda match: _SAMPLE_BY_TYPE.get(match.group(2), "1"), path)


def _operations(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """``(method, concrete path, public)`` for every HTTP operation the app serves."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or MIDDLEWARE_EXCLUDED.match(route.path):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                yield method, _concrete(route.path), bool(handler.opt.get("public"))


def _operations_of_the_real_app() -> list[tuple[str, str]]:
    app = create_app(load_settings({"NEARX_JWT_KEYS": "matrix:" + "k" * 40}), db_url="postgresql://unused")
    # sorted: pytest-xdist workers must collect the same ids in the same order
    return sorted({(method, path) for method, path, public in _operations(app) if not public})


PROTECTED = _operations_of_the_real_app()
ADMIN = [(method, path) for method, path in PROTECTED if path.startswith("/v1/admin/")]


def _forged(settings: Settings) -> dict[str, str]:
    """A well-formed token with our kid, signed with a key we never issued."""
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(new_id()),
        "sid": str(new_id()),
    }
    now = int(utc_now().timestamp())
    token = jwt.encode(
        {**claims, "roles": ["admin"], "mfa": True, "iat": now, "exp": now + 600},
        "not-our-secret-" + "x" * 32,
        algorithm="HS256",
        headers={"kid": settings.signing_keys[0].kid},
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({"NEARX_HOME": str(Path(tmp_path_factory.mktemp("matrix")) / "nearx")})


@pytest.fixture(scope="module")
async def shared_client(
    pg_admin_url: str, template_db: str, shared_settings: Settings
) -> AsyncIterator[Client]:
    """One app and database for the generic checks: they refuse every request, so nothing is written."""
    name = f"nearx_matrix_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name, template=template_db)
    try:
        app = create_app(shared_settings, db_url=with_database(pg_admin_url, name))
        async with AsyncTestClient(app=app) as test_client:
            yield test_client
    finally:
        drop_database(pg_admin_url, name)


def test_the_matrix_sees_the_routes() -> None:
    assert ("GET", "/v1/me") in PROTECTED
    assert ("GET", f"/v1/admin/users/{_SAMPLE_BY_TYPE['uuid']}") in ADMIN


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_non_public_route_refuses_anonymous_and_forged_callers(
    shared_client: Client, shared_settings: Settings, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, _forged(shared_settings)):
        response = await shared_client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/unauthenticated"


@pytest.mark.parametrize(("method", "path"), ADMIN)
async def test_admin_routes_refuse_non_staff_and_staff_without_a_second_factor(
    shared_client: Client, shared_settings: Settings, method: str, path: str
) -> None:
    user_id = new_id()
    callers = [auth(shared_settings, user_id, role, mfa=True) for role in NON_STAFF]
    callers.append(auth(shared_settings, user_id, *NON_STAFF, mfa=True))
    callers.append(auth(shared_settings, user_id, Role.ADMIN, mfa=False))
    for headers in callers:
        response = await shared_client.request(method, path, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"] == "/problems/forbidden"


# --- explicit cross-user cases for the profile routes --------------------------------------------

THAMEL = {"label": "Home", "line": "Thamel Marg 12, Kathmandu", "lat": 27.7154, "lng": 85.3123}


@pytest.mark.parametrize(
    ("role", "mfa", "status"),
    [
        (Role.CUSTOMER, True, 403),
        (Role.MERCHANT, True, 403),
        (Role.COURIER, True, 403),
        (Role.PROVIDER, True, 403),
        (Role.SUPPORT, False, 403),
        (Role.ADMIN, False, 403),
        (Role.SUPPORT, True, 200),
        (Role.ADMIN, True, 200),
    ],
)
async def test_who_may_read_another_users_profile(
    client: Client, conn: Any, settings: Settings, role: Role, mfa: bool, status: int
) -> None:
    target = await insert_user(conn, phone="+9779812345678")
    caller = await insert_user(conn, role)
    response = await client.get(f"/v1/admin/users/{target}", headers=auth(settings, caller, role, mfa=mfa))
    assert response.status_code == status, response.text


async def test_a_customer_cannot_touch_another_customers_addresses(
    client: Client, conn: Any, settings: Settings
) -> None:
    owner, other = await insert_user(conn), await insert_user(conn)
    created = await client.post("/v1/me/addresses", json=THAMEL, headers=auth(settings, owner))
    url = f"/v1/me/addresses/{created.json()['id']}"
    other_headers = auth(settings, other)
    attempts = [
        ("GET", url, None),
        ("PATCH", url, {"line": "Taken over"}),
        ("DELETE", url, None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=other_headers)
        assert response.status_code == 404, (method, response.text)
    row = await (await conn.execute("SELECT line FROM addresses WHERE user_id = %s", (owner,))).fetchone()
    assert row["line"] == THAMEL["line"]


async def test_me_routes_only_ever_act_on_the_callers_own_profile(
    client: Client, conn: Any, settings: Settings
) -> None:
    """There is no user id in /v1/me to tamper with: a write lands on the token's subject only."""
    owner, other = (
        await insert_user(conn, display_name="Owner"),
        await insert_user(conn, display_name="Other"),
    )
    response = await client.patch("/v1/me", json={"display_name": "Changed"}, headers=auth(settings, other))
    assert response.status_code == 200
    assert response.json()["id"] == str(other)
    names = await (
        await conn.execute("SELECT id, display_name FROM users WHERE id IN (%s, %s)", (owner, other))
    ).fetchall()
    assert {row["id"]: row["display_name"] for row in names} == {owner: "Owner", other: "Changed"}
    unknown = await client.patch("/v1/me", json={"id": str(owner)}, headers=auth(settings, other))
    assert unknown.status_code == 400


# --- explicit cross-customer and cross-merchant cases for the marketplace routes -----------------

MARKET = DemoCity(
    city_id="kathmandu",
    merchants=(
        DemoMerchant("pm-m-1", "First shop", "restaurant", 27.7154, 85.3123, 10, 30_000),
        DemoMerchant("pm-m-2", "Second shop", "cafe", 27.7045, 85.3096, 5, 20_000),
    ),
    providers=(DemoProvider("pm-p-1", "Pipes", ("plumber",), 27.70, 85.32, 80_000, tuple(range(7)), 8, 18),),
    couriers=(),
    customer=DemoCustomer("pm-c-1", "+9779812345678", 27.71, 85.31, False, "medium", None),
)


@dataclass(frozen=True)
class Market:
    customer: dict[str, str]
    stranger: dict[str, str]
    owners: dict[str, dict[str, str]]
    merchants: dict[str, uuid.UUID]
    order_id: str
    merchant_order_id: str
    booking_id: str
    intent_id: str


async def _market(client: Client, conn: Any, settings: Settings) -> Market:
    """Two approved shops and a provider (through the demo seeder), and one customer who has
    checked out at the first shop, held a plumber's slot and created a payment intent."""
    await seed_city(conn, settings, MARKET)
    ids = {
        row["source_id"]: row["platform_id"]
        for row in await (await conn.execute("SELECT source_id, platform_id FROM demo_entities")).fetchall()
    }
    owners = {}
    for source in ("pm-m-1", "pm-m-2"):
        row = await (
            await conn.execute("SELECT owner_user_id FROM merchants WHERE id = %s", (ids[source],))
        ).fetchone()
        owners[source] = auth(settings, row["owner_user_id"], Role.MERCHANT)
    customer = auth(settings, ids["pm-c-1"])
    variant = await (
        await conn.execute(
            "SELECT v.id FROM product_variants v WHERE v.merchant_id = %s ORDER BY v.sku LIMIT 1",
            (ids["pm-m-1"],),
        )
    ).fetchone()
    body = {
        "items": [{"variant_id": str(variant["id"]), "quantity": 1}],
        "delivery": {"lat": 27.71, "lng": 85.31},
    }
    order = await client.post("/v1/orders", json=body, headers={**customer, "Idempotency-Key": "pm-o"})
    assert order.status_code == 201, order.text
    service = await (await conn.execute("SELECT id, merchant_id FROM service_listings")).fetchone()
    day = (utc_now() + timedelta(days=3)).date().isoformat()
    slots = await client.get(
        f"/v1/providers/{service['merchant_id']}/slots",
        params={"date": day, "service_id": str(service["id"])},
        headers=customer,
    )
    booking = await client.post(
        "/v1/bookings",
        json={"service_id": str(service["id"]), "starts_at": slots.json()[0]["starts_at"]},
        headers={**customer, "Idempotency-Key": "pm-b"},
    )
    assert booking.status_code == 201, booking.text
    intent = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": 10_000, "currency": "NPR", "city_id": "kathmandu"},
        headers={**customer, "Idempotency-Key": "pm-p"},
    )
    assert intent.status_code == 201, intent.text
    return Market(
        customer=customer,
        stranger=auth(settings, await insert_user(conn)),
        owners=owners,
        merchants={source: ids[source] for source in ("pm-m-1", "pm-m-2")},
        order_id=order.json()["id"],
        merchant_order_id=order.json()["merchant_orders"][0]["id"],
        booking_id=booking.json()["id"],
        intent_id=intent.json()["id"],
    )


async def _states(conn: Any, market: Market) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    queries = [
        ("SELECT status, refunded_minor FROM merchant_orders WHERE id = %s", market.merchant_order_id),
        ("SELECT status FROM bookings WHERE id = %s", market.booking_id),
        ("SELECT status, amount_captured FROM payment_intents WHERE id = %s", market.intent_id),
    ]
    rows = [await (await conn.execute(sql, (key,))).fetchone() for sql, key in queries]
    count = await (await conn.execute("SELECT count(*) AS n FROM webhook_subscriptions")).fetchone()
    return (*rows, count["n"])


async def test_a_customer_cannot_read_or_act_on_another_customers_orders_bookings_and_payments(
    client: Client, conn: Any, settings: Settings
) -> None:
    market = await _market(client, conn, settings)
    before = await _states(conn, market)
    mo, booking, intent = market.merchant_order_id, market.booking_id, market.intent_id
    key = {"Idempotency-Key": "stranger"}
    attempts = [
        ("GET", f"/v1/orders/{market.order_id}", None),
        ("GET", f"/v1/merchant-orders/{mo}", None),
        ("GET", f"/v1/merchant-orders/{mo}/history", None),
        ("POST", f"/v1/merchant-orders/{mo}/transitions", {"to": "cancelled", "reason": "not mine"}),
        ("POST", f"/v1/merchant-orders/{mo}/refunds", {"reason": "not mine either"}),
        ("GET", f"/v1/bookings/{booking}", None),
        ("POST", f"/v1/bookings/{booking}/cancel", {"reason": "not mine"}),
        ("POST", f"/v1/bookings/{booking}/release", None),
        ("POST", f"/v1/bookings/{booking}/confirm", None),
        ("GET", f"/v1/payment-intents/{intent}", None),
        ("POST", f"/v1/payment-intents/{intent}/confirm", {"payment_method": "pm_card_visa"}),
        ("POST", f"/v1/payment-intents/{intent}/capture", {}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers={**market.stranger, **key})
        assert response.status_code in (403, 404), (method, path, response.status_code, response.text)
    assert await _states(conn, market) == before
    # the owner still reads all three: the refusals above are about who asks, not what exists
    for path in (f"/v1/orders/{market.order_id}", f"/v1/bookings/{booking}", f"/v1/payment-intents/{intent}"):
        assert (await client.get(path, headers=market.customer)).status_code == 200, path


async def test_merchant_staff_cannot_reach_another_merchants_orders_refunds_or_webhooks(
    client: Client, conn: Any, settings: Settings
) -> None:
    """The rival shop's owner and its manager, each refused everywhere at the first shop."""
    market = await _market(client, conn, settings)
    first, second = market.merchants["pm-m-1"], market.merchants["pm-m-2"]
    subscribed = await client.post(
        f"/v1/merchants/{first}/webhooks",
        json={"url": "https://hooks.example.com/first", "event_types": ["order.created"]},
        headers=market.owners["pm-m-1"],
    )
    assert subscribed.status_code == 201, subscribed.text
    webhook = subscribed.json()["id"]
    before = await _states(conn, market)
    mo = market.merchant_order_id
    attempts = [
        ("GET", f"/v1/merchant-orders/{mo}", None),
        ("GET", f"/v1/merchant-orders/{mo}/history", None),
        ("GET", f"/v1/merchants/{first}/orders", None),
        ("POST", f"/v1/merchant-orders/{mo}/transitions", {"to": "accepted"}),
        ("POST", f"/v1/merchant-orders/{mo}/transitions", {"to": "rejected", "reason": "rival shop"}),
        ("POST", f"/v1/merchant-orders/{mo}/refunds", {"reason": "rival shop"}),
        ("GET", f"/v1/merchants/{first}/webhooks", None),
        (
            "POST",
            f"/v1/merchants/{first}/webhooks",
            {"url": "https://evil.example.com", "event_types": ["order.created"]},
        ),
        ("GET", f"/v1/merchants/{first}/webhooks/{webhook}/deliveries", None),
        ("GET", f"/v1/merchants/{second}/webhooks/{webhook}/deliveries", None),  # own shop, rival's hook
    ]
    manager = await insert_user(conn)
    hired = await client.post(
        f"/v1/merchants/{second}/staff",
        json={"user_id": str(manager), "role": "manager"},
        headers=market.owners["pm-m-2"],
    )
    assert hired.status_code == 201, hired.text
    for rival in (market.owners["pm-m-2"], auth(settings, manager, Role.MERCHANT)):
        for method, path, body in attempts:
            headers = {**rival, "Idempotency-Key": "rival"}
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code in (403, 404), (method, path, response.status_code, response.text)
    assert await _states(conn, market) == before
    own = await client.get(
        f"/v1/merchants/{first}/webhooks/{webhook}/deliveries", headers=market.owners["pm-m-1"]
    )
    assert own.status_code == 200, own.text
    assert (await client.get(f"/v1/merchant-orders/{mo}", headers=market.owners["pm-m-1"])).status_code == 200
