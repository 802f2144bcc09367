"""Scoring at checkout without trained models: the rules decide (marked degraded), the routing
heuristic promises, and the decisions hold or step up the checkout as documented."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.orders.ports import CheckoutRisk, RiskVerdict
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.ids import new_id
from tests.api.marketplace.conftest import Actor, MakeMerchant, MakeProduct

Client = AsyncTestClient[Litestar]
DROP_OFF = {"lat": 27.7010, "lng": 85.3210}


@dataclass
class FixedVerdict:
    """A scorer that always decides the same (to exercise what each decision does to a checkout)."""

    decision: str
    seen: list[CheckoutRisk]

    async def assess_checkout(self, risk: CheckoutRisk) -> RiskVerdict:
        self.seen.append(risk)
        return RiskVerdict(self.decision, 0.9, ("test_reason",), "fixed")


async def customer(app: Litestar, conn: Any, *, mfa: bool = False, user_agent: str = "phone/1") -> Actor:
    """A customer signed in on a device (an ``auth_sessions`` row with its user agent and IP)."""
    user_id, session_id = new_id(), new_id()
    await conn.execute("INSERT INTO users (id, display_name) VALUES (%s, 't')", (user_id,))
    await conn.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, 'customer')", (user_id,))
    await conn.execute(
        "INSERT INTO auth_sessions (id, user_id, method, mfa, ip, user_agent, expires_at) "
        "VALUES (%s, %s, 'otp', %s, '10.0.0.1', %s, now() + interval '1 day')",
        (session_id, user_id, mfa, user_agent),
    )
    principal = Principal(user_id=user_id, roles=frozenset({Role.CUSTOMER}), session_id=session_id, mfa=mfa)
    token = app.state.token_codec.issue(principal, now=utc_now())
    return Actor(user_id, {"Authorization": f"Bearer {token}"})


async def checkout(client: Client, who: Actor, variant: str, quantity: int = 1, **extra: Any) -> Any:
    body = {"items": [{"variant_id": variant, "quantity": quantity}], "delivery": DROP_OFF, **extra}
    return await client.post(
        "/v1/orders", json=body, headers={**who.headers, "Idempotency-Key": uuid.uuid4().hex}
    )


@pytest.fixture
async def momo(make_merchant: MakeMerchant, make_product: MakeProduct) -> str:
    owner, merchant = await make_merchant(name="Momo House")
    product = await make_product(owner, merchant)
    return str(product["variants"][0]["id"])


async def _assessments(conn: Any, user: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM checkout_fraud_assessments WHERE customer_id = %s ORDER BY at", (user,)
        )
    ).fetchall()


async def _orders(conn: Any, user: uuid.UUID) -> int:
    row = await (
        await conn.execute("SELECT count(*) AS n FROM orders WHERE customer_id = %s", (user,))
    ).fetchone()
    return int(row["n"])


async def test_without_models_the_rules_decide_and_the_heuristic_promises(
    app: Litestar, client: Client, conn: Any, momo: str
) -> None:
    who = await customer(app, conn)
    await app.state.matching_index.reload()
    served = await client.get("/v1/match", params=DROP_OFF, headers=who.headers)
    assert served.status_code == 200, served.text
    match_id = served.json()["match_id"]
    response = await checkout(client, who, momo, quantity=2, payment_method="card", match_id=match_id)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["fraud"] == {"decision": "approve", "score": 0.0, "reasons": [], "scorer": "rules"}
    assert order["match_id"] == match_id
    (child,) = order["merchant_orders"]
    eta = child["eta"]
    assert eta["model"] is None
    assert eta["degraded"] == "no_model"
    assert 0 < eta["p50_s"] <= eta["p90_s"]
    (stored,) = await _assessments(conn, who.user_id)
    assert stored["order_id"] == uuid.UUID(order["id"])
    assert (stored["degraded"], stored["outcome"]) == ("no_model", "placed")
    assert stored["inputs"]["item_count"] == 2
    assert stored["inputs"]["payment_method"] == "card"
    assert stored["inputs"]["new_device"] is True  # no earlier sign-in from this user agent
    created = await (
        await conn.execute("SELECT payload FROM outbox WHERE event_type = 'order.created'")
    ).fetchone()
    impressions = await (
        await conn.execute("SELECT payload FROM outbox WHERE event_type = 'match.served'")
    ).fetchone()
    assert impressions["payload"]["match_id"] == match_id
    assert created["payload"]["match_id"] == match_id  # joins the order to the match's impressions
    assert created["payload"]["eta_p90_s"] == eta["p90_s"]
    again = await client.get(f"/v1/orders/{order['id']}", headers=who.headers)
    assert again.json()["merchant_orders"][0]["eta"] == eta
    assert again.json()["fraud"] == order["fraud"]


async def test_checkouts_from_one_device_are_counted_within_the_hour(
    app: Litestar, client: Client, conn: Any, momo: str
) -> None:
    who = await customer(app, conn)
    other_account = await customer(app, conn)  # same user agent and IP: the same device
    for actor in (who, other_account, who):
        assert (await checkout(client, actor, momo)).status_code == 201
    counts = [a["inputs"]["device_orders_1h"] for a in await _assessments(conn, who.user_id)]
    assert counts == [1, 3]
    assert [a["inputs"]["prior_orders"] for a in await _assessments(conn, who.user_id)] == [0, 1]


async def test_step_up_needs_a_second_factor_and_nothing_is_ordered_without_it(
    app: Litestar, client: Client, conn: Any, momo: str
) -> None:
    app.state.checkout_risk = FixedVerdict("step_up", [])
    plain = await customer(app, conn)
    response = await checkout(client, plain, momo)
    assert response.status_code == 403, response.text
    assert response.json()["type"].endswith("step-up-required")
    assert await _orders(conn, plain.user_id) == 0
    (refused,) = await _assessments(conn, plain.user_id)
    assert (refused["order_id"], refused["outcome"], refused["decision"]) == (
        None,
        "step_up_required",
        "step_up",
    )

    strong = await customer(app, conn, mfa=True)
    response = await checkout(client, strong, momo)
    assert response.status_code == 201, response.text
    assert response.json()["fraud"]["decision"] == "step_up"
    (placed,) = await _assessments(conn, strong.user_id)
    assert placed["outcome"] == "placed"
    assert "second_factor_in_session" in placed["reasons"]


async def test_review_holds_the_checkout_and_keeps_the_assessment(
    app: Litestar, client: Client, conn: Any, momo: str
) -> None:
    app.state.checkout_risk = FixedVerdict("review", [])
    who = await customer(app, conn, mfa=True)
    response = await checkout(client, who, momo)
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("held-for-review")
    assert await _orders(conn, who.user_id) == 0
    (held,) = await _assessments(conn, who.user_id)
    assert (held["outcome"], held["reasons"]) == ("held_for_review", ["test_reason"])
    stock = await (
        await conn.execute("SELECT reserved FROM inventory WHERE variant_id = %s", (momo,))
    ).fetchone()
    assert stock["reserved"] == 0  # nothing was reserved either


async def test_bad_scoring_input_is_a_4xx(app: Litestar, client: Client, conn: Any, momo: str) -> None:
    who = await customer(app, conn)
    assert (await checkout(client, who, momo, payment_method="bitcoin")).status_code == 400
    assert (await checkout(client, who, momo, match_id="not-a-uuid")).status_code == 400
    unknown = await checkout(client, who, momo, match_id=str(uuid.uuid4()))
    assert unknown.status_code == 422, unknown.text  # a match never served to this customer
    assert await _orders(conn, who.user_id) == 0


async def test_a_reviewer_labels_held_checkouts_and_a_cleared_cart_goes_through(
    app: Litestar, client: Client, conn: Any, momo: str, admin: Actor
) -> None:
    app.state.checkout_risk = FixedVerdict("review", [])
    honest, crook = await customer(app, conn), await customer(app, conn, user_agent="other/2")
    assert (await checkout(client, honest, momo, quantity=2)).status_code == 409
    assert (await checkout(client, crook, momo, quantity=3)).status_code == 409
    queue = await client.get("/v1/admin/checkout-reviews", headers=admin.headers)
    assert queue.status_code == 200, queue.text
    held = {row["customer_id"]: row for row in queue.json()}
    assert set(held) == {str(honest.user_id), str(crook.user_id)}
    assert held[str(honest.user_id)]["inputs"]["item_count"] == 2
    assert (await client.get("/v1/admin/checkout-reviews", headers=honest.headers)).status_code == 403

    for who, fraud in ((honest, False), (crook, True)):
        path = f"/v1/admin/checkout-reviews/{held[str(who.user_id)]['id']}"
        decided = await client.post(path, json={"fraud": fraud}, headers=admin.headers)
        assert decided.status_code == 200, decided.text
        assert decided.json()["fraud"] is fraud
        again = await client.post(path, json={"fraud": fraud}, headers=admin.headers)
        assert again.status_code == 409  # decided once
    assert (await client.get("/v1/admin/checkout-reviews", headers=admin.headers)).json() == []
    labels = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'checkout.reviewed' ORDER BY position"
        )
    ).fetchall()
    assert [row["payload"]["fraud"] for row in labels] == [False, True]

    cleared = await checkout(client, honest, momo, quantity=2)  # the same cart, a new attempt
    assert cleared.status_code == 201, cleared.text
    assert "cleared_by_review" in (await _assessments(conn, honest.user_id))[-1]["reasons"]
    assert (await checkout(client, crook, momo, quantity=3)).status_code == 409
    assert (await checkout(client, honest, momo, quantity=5)).status_code == 409  # another cart: held
