"""An order's life in the running app: pay, deliver, capture with split settlement, refund, pay out.

Everything goes through the HTTP API of ``create_app`` (whose refund and
deposit ports are payments' adapters) and the jobs ``nearx payments
reconcile`` runs; the ledger must balance after every step.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import service
from api.domains.payments.fraud import RulesFraudScorer
from api.domains.payments.jobs import capture_orders_database, reconcile_database
from api.domains.payments.marketplace import BookingDeposits, OrderRefunds
from api.domains.payments.settlement import SettlementLeg, merge_legs, net_of_refunds
from nearx.clock import utc_now
from nearx.db import Connection
from tests.api.marketplace.conftest import Actor, MakeMerchant, MakeProduct, MakeUser
from tests.api.payments.helpers import assert_ledger_invariants, fund_wallet, scalar

Client = AsyncTestClient[Litestar]
HOME = {"lat": 27.7010, "lng": 85.3210}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
def rules(app: Litestar, client: Client) -> None:
    app.state.fraud_scorer = RulesFraudScorer()


async def _shop(make_merchant: MakeMerchant, make_product: MakeProduct) -> tuple[Actor, dict[str, Any], str]:
    owner, merchant = await make_merchant(name="Kirana", category="grocery")
    product = await make_product(owner, merchant)  # 25 000 paisa, standard tax (13 %)
    return owner, merchant, product["variants"][0]["id"]


async def _checkout_and_pay(client: Client, customer: Actor, variants: list[str]) -> dict[str, Any]:
    placed = await client.post(
        "/v1/orders",
        json={"items": [{"variant_id": v, "quantity": 2} for v in variants], "delivery": HOME},
        headers={**customer.headers, **_key()},
    )
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    intent = await client.post(
        "/v1/payment-intents",
        json={
            "amount_minor": order["total_minor"],
            "currency": order["currency"],
            "order_id": order["id"],
            "city_id": order["city_id"],
        },
        headers={**customer.headers, **_key()},
    )
    assert intent.status_code == 201, intent.text
    confirmed = await client.post(
        f"/v1/payment-intents/{intent.json()['id']}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers={**customer.headers, **_key()},
    )
    assert confirmed.json()["status"] == "requires_capture", confirmed.text
    order["intent_id"] = intent.json()["id"]
    return order


async def _walk(client: Client, who: Actor, merchant_order_id: str, *steps: str) -> None:
    for step in steps:
        moved = await client.post(
            f"/v1/merchant-orders/{merchant_order_id}/transitions", json={"to": step}, headers=who.headers
        )
        assert moved.status_code == 200, (step, moved.text)


DELIVERED = ("accepted", "preparing", "ready_for_pickup", "picked_up", "delivered")


async def test_a_delivered_order_is_captured_split_refunded_and_paid_out(
    client: Client,
    conn: Connection,
    db_url: str,
    rules: None,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    admin: Actor,
) -> None:
    _, merchant, variant = await _shop(make_merchant, make_product)
    customer = await make_user()
    order = await _checkout_and_pay(client, customer, [variant])
    child = order["merchant_orders"][0]
    await _walk(client, admin, child["id"], *DELIVERED[:-1])
    early = await capture_orders_database(db_url)
    assert early.captured == 0  # still on its way: nothing is charged yet
    await _walk(client, admin, child["id"], "delivered")

    report = await capture_orders_database(db_url)
    assert (report.captured, report.voided, report.unsettled) == (1, 0, 0)
    intent = await service.get_intent(conn, uuid.UUID(order["intent_id"]))
    assert intent["status"] == "succeeded"
    assert intent["amount_captured"] == order["total_minor"]
    items, fee, tax = (
        child["items_minor"] - child["discount_minor"],
        child["delivery_fee_minor"],
        child["tax_minor"],
    )
    commission = items * 800 // 10_000  # grocery
    merchant_payable = AccountRef(AccountKind.MERCHANT_PAYABLE, "NPR", uuid.UUID(merchant["id"]))
    assert await ledger.balance(conn, merchant_payable) == items - commission
    assert await ledger.balance(conn, AccountRef(AccountKind.TAX_PAYABLE, "NPR")) == tax
    assert await ledger.balance(conn, AccountRef(AccountKind.PLATFORM_REVENUE, "NPR")) == commission + fee
    assert (await capture_orders_database(db_url)).captured == 0  # a second pass captures nothing
    await assert_ledger_invariants(conn)

    refund = await client.post(
        f"/v1/merchant-orders/{child['id']}/refunds",
        json={"reason": "one was crushed", "items": [{"item_id": _item(child), "quantity": 1}]},
        headers={**admin.headers, **_key()},
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "requested"
    assert refund.json()["payment_reference"] is not None
    dispatched = await reconcile_database(db_url, older_than=timedelta(0))
    assert dispatched.refunds_dispatched == 1
    after = await service.get_intent(conn, uuid.UUID(order["intent_id"]))
    assert after["amount_refunded"] == refund.json()["amount_minor"]
    await assert_ledger_invariants(conn)

    owed = await ledger.balance(conn, merchant_payable)
    run = await client.post(
        "/v1/admin/payouts/batches",
        json={"currency": "NPR", "period_end": utc_now().isoformat(), "min_payout_minor": 0},
        headers=admin.headers,
    )
    assert run.status_code == 200, run.text
    paid = {p["party_id"]: p["amount_minor"] for p in run.json()["batch"]["payouts"]}
    assert paid == {merchant["id"]: owed}
    assert await ledger.balance(conn, merchant_payable) == 0
    await assert_ledger_invariants(conn)


def _item(child: dict[str, Any]) -> str:
    item_id: str = child["items"][0]["id"]
    return item_id


async def test_a_refund_before_the_capture_is_netted_and_a_cancelled_order_voids(
    client: Client,
    conn: Connection,
    db_url: str,
    rules: None,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    admin: Actor,
) -> None:
    _, _, variant = await _shop(make_merchant, make_product)
    customer = await make_user()
    order = await _checkout_and_pay(client, customer, [variant])
    child = order["merchant_orders"][0]
    await _walk(client, admin, child["id"], *DELIVERED)
    refund = await client.post(
        f"/v1/merchant-orders/{child['id']}/refunds",
        json={"reason": "late", "items": [{"item_id": _item(child), "quantity": 1}]},
        headers={**admin.headers, **_key()},
    )
    assert refund.json()["status"] == "requested"
    assert (await capture_orders_database(db_url)).captured == 1
    intent = await service.get_intent(conn, uuid.UUID(order["intent_id"]))
    assert intent["amount_captured"] == order["total_minor"] - refund.json()["amount_minor"]
    assert intent["amount_refunded"] == 0  # never captured, so nothing to send back
    await assert_ledger_invariants(conn)

    cancelled = await _checkout_and_pay(client, customer, [variant])
    await _walk(client, customer, cancelled["merchant_orders"][0]["id"], "cancelled")
    assert (await capture_orders_database(db_url)).voided == 1
    voided = await service.get_intent(conn, uuid.UUID(cancelled["intent_id"]))
    assert voided["status"] == "canceled"
    await assert_ledger_invariants(conn)


def test_a_refund_before_capture_shrinks_every_leg_pro_rata() -> None:
    legs = [
        SettlementLeg("merchant_payable", "m", 9_200),
        SettlementLeg("platform_revenue", None, 800),
        SettlementLeg("tax_payable", None, 1_300),
        SettlementLeg("platform_revenue", None, 700),
    ]
    netted = net_of_refunds(legs, 6_000)
    assert sum(leg.amount_minor for leg in netted) == 12_000 - 6_000
    assert {(leg.kind, leg.amount_minor) for leg in netted} == {
        ("merchant_payable", 4_600),
        ("platform_revenue", 750),
        ("tax_payable", 650),
    }
    assert net_of_refunds(legs, 0) == merge_legs(legs)


async def test_the_app_plugs_payments_into_the_marketplace_ports(app: Litestar, client: Client) -> None:
    assert isinstance(app.state.refund_gateway, OrderRefunds)
    assert isinstance(app.state.deposit_gateway, BookingDeposits)


async def test_a_customer_pays_only_their_own_order_and_never_more_than_it_costs(
    client: Client,
    conn: Connection,
    rules: None,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
) -> None:
    _, _, variant = await _shop(make_merchant, make_product)
    owner_of_order, stranger = await make_user(), await make_user()
    order = await _checkout_and_pay(client, owner_of_order, [variant])
    for who, amount in ((stranger, order["total_minor"]), (owner_of_order, order["total_minor"] + 1)):
        refused = await client.post(
            "/v1/payment-intents",
            json={"amount_minor": amount, "currency": "NPR", "order_id": order["id"]},
            headers={**who.headers, **_key()},
        )
        assert refused.status_code == 422, refused.text
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 1


async def test_an_order_paid_by_wallet_and_card_is_left_for_a_person(
    client: Client,
    conn: Connection,
    db_url: str,
    rules: None,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    admin: Actor,
) -> None:
    _, _, variant = await _shop(make_merchant, make_product)
    customer = await make_user()
    placed = await client.post(
        "/v1/orders",
        json={"items": [{"variant_id": variant, "quantity": 1}], "delivery": HOME},
        headers={**customer.headers, **_key()},
    )
    order = placed.json()
    await fund_wallet(conn, customer.user_id, 1_000)
    paid = await client.post(
        "/v1/wallet/payments",
        json={
            "amount_minor": order["total_minor"],
            "currency": "NPR",
            "card_payment_method": "pm_card_visa",
            "order_id": order["id"],
        },
        headers={**customer.headers, **_key()},
    )
    assert [i["amount_minor"] for i in paid.json()["intents"]] == [1_000, order["total_minor"] - 1_000]
    await _walk(client, admin, order["merchant_orders"][0]["id"], *DELIVERED)
    report = await capture_orders_database(db_url)
    assert (report.captured, report.unsettled) == (0, 2)
    assert await scalar(conn, "SELECT count(*) FROM payment_intents WHERE status = 'requires_capture'") == 2
    await assert_ledger_invariants(conn)
