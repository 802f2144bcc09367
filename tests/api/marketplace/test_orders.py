"""Checkout, pricing on the server, idempotency, the order state machine, sweeps and refunds."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.orders import service as orders
from api.domains.orders.ports import RecordingRefundGateway, RefundOutcome, RefundRequest
from nearx.clock import utc_now
from nearx.geo import haversine_m
from tests.api.marketplace.conftest import KTM, Actor, MakeMerchant, MakeProduct, MakeUser

HOME = {"lat": 27.7010, "lng": 85.3210}
"""The customer's delivery point, ~150 m from the merchants at KTM."""

TABLES = (
    "orders",
    "merchant_orders",
    "order_items",
    "inventory_reservations",
    "order_status_history",
    "idempotency_keys",
    "outbox",
)


async def _counts(conn: Any) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
        counts[table] = int(row["n"])
    return counts


async def _stock(conn: Any, variant_id: str) -> tuple[int, int]:
    row = await (
        await conn.execute("SELECT on_hand, reserved FROM inventory WHERE variant_id = %s", (variant_id,))
    ).fetchone()
    return row["on_hand"], row["reserved"]


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def _checkout(
    client: AsyncTestClient[Litestar], who: Actor, items: list[dict[str, Any]], **extra: Any
) -> Any:
    body = {"items": items, "delivery": HOME, **extra}
    return await client.post("/v1/orders", json=body, headers={**who.headers, **_key()})


@pytest.fixture
async def shop(make_merchant: MakeMerchant, make_product: MakeProduct) -> dict[str, Any]:
    owner, merchant = await make_merchant(name="Momo House")
    momo = await make_product(owner, merchant)  # 25_000 NPR paisa, standard (13%), 10 in stock
    tea = await make_product(
        owner,
        merchant,
        name="Tea",
        category="drinks",
        tax_class="zero",
        variants=[{"sku": "tea", "name": "cup", "price_minor": 4_000, "initial_stock": 50}],
    )
    return {
        "owner": owner,
        "merchant": merchant,
        "momo": momo["variants"][0]["id"],
        "tea": tea["variants"][0]["id"],
    }


async def test_multi_merchant_checkout_prices_on_the_server(
    client: AsyncTestClient[Litestar],
    shop: dict[str, Any],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
) -> None:
    owner2, pharmacy = await make_merchant(name="Pharma", category="pharmacy", lat=27.7005, lng=85.3230)
    pills = await make_product(
        owner2,
        pharmacy,
        name="Paracetamol",
        category="medicine",
        tax_class="reduced",
        variants=[{"sku": "p", "name": "strip", "price_minor": 9_999, "initial_stock": 3}],
    )
    pills_id = pills["variants"][0]["id"]
    await conn.execute(
        "INSERT INTO promotions (city_id, code, percent_bp, max_discount_minor) "
        "VALUES ('kathmandu', 'DASAIN', 1000, 2000)"
    )
    customer = await make_user()
    items = [
        {"variant_id": shop["momo"], "quantity": 2, "unit_price_minor": 25_000},
        {"variant_id": shop["tea"], "quantity": 3},
        {"variant_id": pills_id, "quantity": 1, "unit_price_minor": 9_999},
    ]
    response = await _checkout(client, customer, items, promo_code="DASAIN")
    assert response.status_code == 201, response.text
    order = response.json()
    by_merchant = {child["merchant_id"]: child for child in order["merchant_orders"]}
    food, meds = by_merchant[shop["merchant"]["id"]], by_merchant[pharmacy["id"]]

    fee_food = 5_000 + 2_000 * round(haversine_m(KTM["lat"], KTM["lng"], HOME["lat"], HOME["lng"])) // 1000
    assert food["items_minor"] == 62_000
    assert food["tax_minor"] == 6_500  # 13% of the momo; tea is zero-rated
    assert food["delivery_fee_minor"] == fee_food
    assert food["discount_minor"] == 2_000  # 10% of 62_000 capped at 2_000
    assert food["total_minor"] == 62_000 + 6_500 + fee_food - 2_000
    assert meds["tax_minor"] == 500  # 5% of 9_999 rounded half-up
    assert meds["discount_minor"] == 1_000  # 10% of 9_999 rounded half-up
    assert order["total_minor"] == food["total_minor"] + meds["total_minor"]
    assert order["currency"] == "NPR"
    assert {c["status"] for c in order["merchant_orders"]} == {"placed"}

    assert await _stock(conn, shop["momo"]) == (10, 2)
    assert await _stock(conn, pills_id) == (3, 1)
    events = await (
        await conn.execute("SELECT event_type, aggregate_id FROM outbox WHERE event_type LIKE 'order.%%'")
    ).fetchall()
    assert sorted(str(e["aggregate_id"]) for e in events) == sorted([food["id"], meds["id"]])
    seen = await client.get(f"/v1/orders/{order['id']}", headers=customer.headers)
    assert seen.json() == order
    stranger = await make_user()
    assert (await client.get(f"/v1/orders/{order['id']}", headers=stranger.headers)).status_code == 404


async def test_same_key_returns_the_same_orders_and_creates_nothing_new(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer = await make_user()
    headers = {**customer.headers, "Idempotency-Key": "cart-42"}
    body = {"items": [{"variant_id": shop["momo"], "quantity": 1}], "delivery": HOME}
    first = await client.post("/v1/orders", json=body, headers=headers)
    before = await _counts(conn)
    again = await asyncio.gather(*(client.post("/v1/orders", json=body, headers=headers) for _ in range(3)))
    assert [r.status_code for r in again] == [201, 201, 201]
    assert all(r.json() == first.json() for r in again)
    assert await _counts(conn) == before
    assert await _stock(conn, shop["momo"]) == (10, 1)
    other_body = {**body, "items": [{"variant_id": shop["momo"], "quantity": 2}]}
    reused = await client.post("/v1/orders", json=other_body, headers=headers)
    assert reused.status_code == 422


BAD_CHECKOUTS = [
    (lambda s: {"items": [{"variant_id": str(uuid.uuid4()), "quantity": 1}]}, 422),  # unknown product
    (
        lambda s: {"items": [{"variant_id": s["momo"], "quantity": 1, "unit_price_minor": 1}]},
        422,
    ),  # tampered
    (lambda s: {"items": [{"variant_id": s["momo"], "quantity": 1}], "expected_total_minor": 1}, 422),
    (lambda s: {"items": [{"variant_id": s["momo"], "quantity": 0}]}, 400),
    (lambda s: {"items": [{"variant_id": s["momo"], "quantity": -3}]}, 400),
    (lambda s: {"items": []}, 400),
    (lambda s: {"items": [{"variant_id": s["momo"], "quantity": 11}]}, 409),  # more than in stock
    (
        lambda s: {
            "items": [{"variant_id": s["momo"], "quantity": 1}],
            "delivery": {"lat": 27.75, "lng": 85.45},
        },
        422,
    ),
    (lambda s: {"items": [{"variant_id": s["momo"], "quantity": 1}], "promo_code": "NOPE1"}, 422),
    (
        lambda s: {"items": [{"variant_id": s["momo"], "quantity": 1}], "emergency": True},
        422,
    ),  # no reason
]


async def test_bad_checkout_is_refused_and_writes_nothing(
    client: AsyncTestClient[Litestar],
    shop: dict[str, Any],
    make_user: MakeUser,
    conn: Any,
) -> None:
    for mutate, status in BAD_CHECKOUTS:
        customer = await make_user()
        before = await _counts(conn)
        body = {"delivery": HOME, **mutate(shop)}
        response = await client.post("/v1/orders", json=body, headers={**customer.headers, **_key()})
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await _counts(conn) == before
        assert await _stock(conn, shop["momo"]) == (10, 0)


async def test_missing_idempotency_key_is_refused(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer = await make_user()
    body = {"items": [{"variant_id": shop["momo"], "quantity": 1}], "delivery": HOME}
    assert (await client.post("/v1/orders", json=body, headers=customer.headers)).status_code == 422
    assert (await _counts(conn))["orders"] == 0


async def test_fifty_concurrent_checkouts_for_the_last_ten_units(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customers = [await make_user() for _ in range(50)]
    body = {"items": [{"variant_id": shop["momo"], "quantity": 1}], "delivery": HOME}
    responses = await asyncio.gather(
        *(client.post("/v1/orders", json=body, headers={**c.headers, **_key()}) for c in customers)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 10
    assert codes.count(409) == 40
    assert await _stock(conn, shop["momo"]) == (10, 10)
    assert (await _counts(conn))["merchant_orders"] == 10
    negative = await (
        await conn.execute("SELECT count(*) AS n FROM inventory WHERE on_hand - reserved < 0")
    ).fetchone()
    assert negative["n"] == 0


async def _place(
    client: AsyncTestClient[Litestar], customer: Actor, variant: str, quantity: int = 2, **extra: Any
) -> dict[str, Any]:
    response = await _checkout(client, customer, [{"variant_id": variant, "quantity": quantity}], **extra)
    assert response.status_code == 201, response.text
    child: dict[str, Any] = response.json()["merchant_orders"][0]
    return child


async def _move(
    client: AsyncTestClient[Litestar], who: Actor, order_id: str, to: str, reason: str | None = None
) -> Any:
    body: dict[str, Any] = {"to": to} | ({"reason": reason} if reason else {})
    return await client.post(f"/v1/merchant-orders/{order_id}/transitions", json=body, headers=who.headers)


async def test_state_machine_moves_records_and_refuses_illegal_moves(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    customer, owner = await make_user(), shop["owner"]
    child = await _place(client, customer, shop["momo"])
    assert (
        await _move(client, customer, child["id"], "accepted")
    ).status_code == 409  # customers don't accept
    assert (await _move(client, owner, child["id"], "delivered")).status_code == 409  # skipping steps
    assert (await _move(client, owner, child["id"], "accepted")).json()["status"] == "accepted"
    assert await _stock(conn, shop["momo"]) == (8, 0)  # committed: the units left the shelf
    for step in ("preparing", "ready_for_pickup", "picked_up"):
        assert (await _move(client, owner, child["id"], step)).status_code == 200, step
    assert (await _move(client, owner, child["id"], "delivered")).status_code == 409  # only couriers/admins
    delivered = await orders.transition(
        conn, uuid.UUID(child["id"]), "delivered", orders.Actor("courier", None)
    )
    assert delivered.status == "delivered"
    assert (await _move(client, owner, child["id"], "cancelled", "too late")).status_code == 409

    history = (
        await client.get(f"/v1/merchant-orders/{child['id']}/history", headers=customer.headers)
    ).json()
    assert [(h["from_status"], h["to_status"], h["actor_kind"]) for h in history] == [
        (None, "placed", "customer"),
        ("placed", "accepted", "merchant"),
        ("accepted", "preparing", "merchant"),
        ("preparing", "ready_for_pickup", "merchant"),
        ("ready_for_pickup", "picked_up", "merchant"),
        ("picked_up", "delivered", "courier"),
    ]
    events = await (
        await conn.execute(
            "SELECT event_type FROM outbox WHERE aggregate_id = %s ORDER BY position", (child["id"],)
        )
    ).fetchall()
    assert [e["event_type"] for e in events] == [
        "order.created",
        "order.accepted",
        "order.preparing",
        "order.ready_for_pickup",
        "order.picked_up",
        "order.delivered",
    ]


async def test_cancellations_release_stock_and_charge_late_customers(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser
) -> None:
    customer, owner = await make_user(), shop["owner"]
    early = await _place(client, customer, shop["momo"])
    assert (await _move(client, owner, early["id"], "rejected")).status_code == 422  # a reason is required
    rejected = await _move(client, owner, early["id"], "rejected", "out of dough")
    assert rejected.json()["status"] == "rejected"
    late = await _place(client, customer, shop["momo"])
    await _move(client, owner, late["id"], "accepted")
    cancelled = (await _move(client, customer, late["id"], "cancelled", "changed my mind")).json()
    assert cancelled["cancelled_by"] == "customer"
    assert cancelled["cancellation_fee_minor"] == 5_000  # 10% of 50_000


async def test_overdue_orders_are_cancelled_by_the_sweep_and_lazily_at_checkout(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer = await make_user()
    child = await _place(client, customer, shop["momo"], quantity=10)
    assert (
        await _checkout(client, customer, [{"variant_id": shop["momo"], "quantity": 1}])
    ).status_code == 409
    await conn.execute(
        "UPDATE merchant_orders SET accept_by = now() - interval '1 minute' WHERE id = %s", (child["id"],)
    )
    await conn.execute("UPDATE inventory_reservations SET expires_at = now() - interval '1 minute'")
    # lazily, at checkout: the overdue order is cancelled and its units sold again
    assert (
        await _checkout(client, customer, [{"variant_id": shop["momo"], "quantity": 1}])
    ).status_code == 201
    status = await (
        await conn.execute("SELECT status, cancelled_by FROM merchant_orders WHERE id = %s", (child["id"],))
    ).fetchone()
    assert (status["status"], status["cancelled_by"]) == ("cancelled", "system")
    assert await _stock(conn, shop["momo"]) == (10, 1)
    # the sweep job does the same for everything overdue
    await conn.execute(
        "UPDATE merchant_orders SET accept_by = now() - interval '1 minute' WHERE status = 'placed'"
    )
    assert await orders.expire_stale(conn, utc_now()) == 1
    assert await _stock(conn, shop["momo"]) == (10, 0)


async def test_emergency_orders_are_audited_and_jump_the_queue(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer = await make_user()
    normal = await _place(client, customer, shop["tea"], quantity=1)
    urgent = await _place(
        client, customer, shop["tea"], quantity=1, emergency=True, emergency_reason="fever at night"
    )
    audit = await (await conn.execute("SELECT customer_id, reason FROM order_emergency_audit")).fetchall()
    assert [(a["customer_id"], a["reason"]) for a in audit] == [(customer.user_id, "fever at night")]
    queue = await client.get(f"/v1/merchants/{shop['merchant']['id']}/orders", headers=shop["owner"].headers)
    assert [o["id"] for o in queue.json()] == [urgent["id"], normal["id"]]
    assert (
        await client.get(f"/v1/merchants/{shop['merchant']['id']}/orders", headers=customer.headers)
    ).status_code == 403


async def test_paused_merchant_cannot_sell(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    await client.put(
        f"/v1/merchants/{shop['merchant']['id']}/pause", json={"paused": True}, headers=shop["owner"].headers
    )
    customer = await make_user()
    assert (
        await _checkout(client, customer, [{"variant_id": shop["momo"], "quantity": 1}])
    ).status_code == 409
    assert (await _counts(conn))["orders"] == 0


class _FakePayments:
    """Stands in for the payments context: records what orders asked for."""

    def __init__(self) -> None:
        self.requests: list[RefundRequest] = []

    async def request_refund(self, conn: Any, request: RefundRequest) -> RefundOutcome:
        self.requests.append(request)
        return RefundOutcome(status="succeeded", payment_reference=f"re_{len(self.requests)}")


async def test_refunds_per_item_then_in_full_through_the_payments_interface(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    shop: dict[str, Any],
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
) -> None:
    payments = _FakePayments()
    app.state.refund_gateway = payments
    customer, owner = await make_user(), shop["owner"]
    child = await _place(client, customer, shop["momo"], quantity=2)
    for step in ("accepted", "preparing", "ready_for_pickup", "picked_up"):
        await _move(client, owner, child["id"], step)
    url = f"/v1/merchant-orders/{child['id']}/refunds"
    early = await client.post(url, json={"reason": "cold food"}, headers={**owner.headers, **_key()})
    assert early.status_code == 409  # not delivered yet
    await _move(client, admin, child["id"], "delivered")
    item_id = child["items"][0]["id"]
    assert (
        await client.post(
            url,
            json={"reason": "cold", "items": [{"item_id": item_id, "quantity": 1}]},
            headers={**customer.headers, **_key()},
        )
    ).status_code == 403
    too_many = {"reason": "cold food", "items": [{"item_id": item_id, "quantity": 3}]}
    assert (await client.post(url, json=too_many, headers={**owner.headers, **_key()})).status_code == 422
    key = _key()
    one = {"reason": "one plate was cold", "items": [{"item_id": item_id, "quantity": 1}]}
    partial = await client.post(url, json=one, headers={**owner.headers, **key})
    assert partial.status_code == 201
    assert partial.json()["amount_minor"] == (50_000 + 6_500) // 2
    assert partial.json()["order_status"] == "partially_refunded"
    assert partial.json()["payment_reference"] == "re_1"
    replay = await client.post(url, json=one, headers={**owner.headers, **key})
    assert replay.json() == partial.json()
    assert len(payments.requests) == 1
    rest = await client.post(url, json={"reason": "sorry, all of it"}, headers={**admin.headers, **_key()})
    assert rest.json()["order_status"] == "refunded"
    assert rest.json()["amount_minor"] == child["total_minor"] - partial.json()["amount_minor"]
    assert sum(r.amount.amount_minor for r in payments.requests) == child["total_minor"]
    assert (
        await client.post(url, json={"reason": "again!"}, headers={**admin.headers, **_key()})
    ).status_code == 409
    rows = await (
        await conn.execute("SELECT status, payment_reference FROM order_refunds ORDER BY created_at")
    ).fetchall()
    assert [(r["status"], r["payment_reference"]) for r in rows] == [
        ("succeeded", "re_1"),
        ("succeeded", "re_2"),
    ]


async def test_default_refund_gateway_records_the_request(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    shop: dict[str, Any],
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
) -> None:
    # the app is composed with payments' adapter; this test is about the recording stand-in
    app.state.refund_gateway = RecordingRefundGateway()
    customer = await make_user()
    child = await _place(client, customer, shop["tea"], quantity=1)
    for step in ("accepted", "preparing", "ready_for_pickup", "picked_up", "delivered"):
        assert (await _move(client, admin, child["id"], step)).status_code == 200
    response = await client.post(
        f"/v1/merchant-orders/{child['id']}/refunds",
        json={"reason": "spilled"},
        headers={**admin.headers, **_key()},
    )
    assert response.json()["status"] == "requested"
    event = await (
        await conn.execute("SELECT payload FROM outbox WHERE event_type = 'order.refund_requested'")
    ).fetchone()
    assert event["payload"]["amount_minor"] == child["total_minor"]


async def test_sweep_job_runs_against_a_database_url(
    client: AsyncTestClient[Litestar], shop: dict[str, Any], make_user: MakeUser, conn: Any, db_url: str
) -> None:
    from api.domains.orders.jobs import sweep

    customer = await make_user()
    await _place(client, customer, shop["momo"], quantity=3)
    assert await sweep(db_url) == 0  # not overdue yet
    await conn.execute("UPDATE merchant_orders SET accept_by = now() - interval '1 second'")
    assert await sweep(db_url) == 1
    assert await _stock(conn, shop["momo"]) == (10, 0)
