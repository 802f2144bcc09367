"""The payment-intent lifecycle against the sandbox gateway and real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import service
from api.domains.payments.gateways.base import ChargeOutcome, ChargeState
from api.domains.payments.settlement import OrderSplit, order_legs
from api.errors import Conflict, InvalidInput
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.helpers import assert_ledger_invariants, fund_wallet, gateways, scalar

CUSTOMER = uuid.UUID(int=7)
MERCHANT = uuid.UUID(int=100)
COURIER = uuid.UUID(int=200)
CLEARING = AccountRef(AccountKind.GATEWAY_CLEARING, "NPR", "sandbox")


async def _authorized(
    conn: Connection, amount: int = 10_000, method: str = "pm_card_visa"
) -> dict[str, object]:
    gws = gateways(conn)
    intent = await service.create_intent(
        conn,
        gws,
        service.NewIntent(amount=Money(amount, "NPR"), provider="sandbox", customer_id=CUSTOMER),
        actor="test",
    )
    return await service.confirm(conn, gws, intent["id"], payment_method=method, actor="test")


async def test_authorize_then_partial_capture_posts_the_captured_amount(conn: Connection) -> None:
    intent = await _authorized(conn)
    assert intent["status"] == "requires_capture"
    assert intent["expires_at"] - intent["authorized_at"] == timedelta(days=7)
    assert await ledger.balance(conn, CLEARING) == 0  # an authorization moves no money
    done = await service.capture(conn, gateways(conn), intent["id"], amount=Money(6_000, "NPR"), actor="test")
    assert (done["status"], done["amount_captured"]) == ("succeeded", 6_000)
    assert await ledger.balance(conn, CLEARING) == 6_000
    history = [t["to_status"] for t in await service.repository.transitions(conn, intent["id"])]
    assert history == ["requires_payment_method", "processing", "requires_capture", "processing", "succeeded"]
    await assert_ledger_invariants(conn)


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("4000000000000002", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_decline_returns_to_requires_payment_method(conn: Connection, method: str, code: str) -> None:
    intent = await _authorized(conn, method=method)
    assert (intent["status"], intent["last_error"]) == ("requires_payment_method", code)
    retried = await service.confirm(
        conn, gateways(conn), intent["id"], payment_method="pm_card_visa", actor="t"
    )
    assert retried["status"] == "requires_capture"


async def test_three_d_secure_requires_action_then_authorizes(conn: Connection) -> None:
    intent = await _authorized(conn, method="4000002760003184")
    assert intent["status"] == "requires_action"
    assert intent["action_url"]
    again = await service.confirm(conn, gateways(conn), intent["id"], payment_method=None, actor="t")
    assert again["status"] == "requires_capture"


async def test_a_timeout_stays_processing_until_reconcile_asks_the_provider(conn: Connection) -> None:
    intent = await _authorized(conn, method="pm_card_timeout")
    assert (intent["status"], intent["last_error"]) == ("processing", "provider_timeout")
    report = await service.reconcile(conn, gateways(conn), older_than=timedelta(0))
    assert report.intents_settled == 1
    assert (await service.get_intent(conn, intent["id"]))["status"] == "requires_capture"
    declined = await _authorized(conn, method="pm_card_timeoutDeclined")
    await service.reconcile(conn, gateways(conn), older_than=timedelta(0))
    assert (await service.get_intent(conn, declined["id"]))["status"] == "requires_payment_method"


async def test_a_capture_timeout_is_settled_by_reconcile_and_posts_once(conn: Connection) -> None:
    intent = await _authorized(conn)
    stuck = await service.capture(conn, gateways(conn), intent["id"], amount=Money(5_408, "NPR"), actor="t")
    assert stuck["status"] == "processing"
    assert await ledger.balance(conn, CLEARING) == 0
    await service.reconcile(conn, gateways(conn), older_than=timedelta(0))
    await service.reconcile(conn, gateways(conn), older_than=timedelta(0))
    assert (await service.get_intent(conn, intent["id"]))["amount_captured"] == 5_408
    assert await ledger.balance(conn, CLEARING) == 5_408
    await assert_ledger_invariants(conn)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Money(10_001, "NPR"), "only 10000 is authorized"),
        (Money(100, "INR"), "not INR"),
        (Money(0, "NPR"), "positive"),
    ],
)
async def test_bad_captures_are_refused_and_move_nothing(
    conn: Connection, amount: Money, message: str
) -> None:
    intent = await _authorized(conn)
    with pytest.raises(InvalidInput, match=message):
        await service.capture(conn, gateways(conn), intent["id"], amount=amount, actor="t")
    assert (await service.get_intent(conn, intent["id"]))["status"] == "requires_capture"
    assert await scalar(conn, "SELECT count(*) FROM ledger_postings") == 0


async def test_multiple_partial_refunds_never_exceed_the_capture(conn: Connection) -> None:
    intent = await _authorized(conn)
    await service.capture(conn, gateways(conn), intent["id"], amount=None, actor="t")
    for key, amount in (("r1", 3_000), ("r2", 4_000)):
        refund = await service.refund(
            conn,
            gateways(conn),
            intent["id"],
            amount=Money(amount, "NPR"),
            bearer="proportional",
            request_key=key,
            actor="t",
        )
        assert refund["status"] == "succeeded"
    with pytest.raises(InvalidInput, match="only 3000 remains"):
        await service.refund(
            conn,
            gateways(conn),
            intent["id"],
            amount=Money(3_001, "NPR"),
            bearer="proportional",
            request_key="r3",
            actor="t",
        )
    again = await service.refund(
        conn,
        gateways(conn),
        intent["id"],
        amount=Money(3_000, "NPR"),
        bearer="proportional",
        request_key="r1",
        actor="t",
    )
    assert again["amount_minor"] == 3_000  # the same key replays the first refund
    assert (await service.get_intent(conn, intent["id"]))["amount_refunded"] == 7_000
    assert await ledger.balance(conn, CLEARING) == 3_000
    await assert_ledger_invariants(conn)


async def test_split_capture_and_refunds_borne_by_merchant_or_platform(conn: Connection) -> None:
    split = OrderSplit(
        merchant_id=MERCHANT,
        courier_id=COURIER,
        items_minor=8_000,
        delivery_fee_minor=1_000,
        tax_minor=1_000,
        merchant_category="restaurant",
    )
    legs = order_legs(split, commission_bp=1_500, currency="NPR")
    intent = await _authorized(conn)
    await service.capture(conn, gateways(conn), intent["id"], amount=None, actor="t", settlement=legs)

    def account(kind: AccountKind, owner: uuid.UUID | None = None) -> AccountRef:
        return AccountRef(kind, "NPR", owner)

    assert await ledger.balance(conn, account(AccountKind.MERCHANT_PAYABLE, MERCHANT)) == 6_800
    assert await ledger.balance(conn, account(AccountKind.COURIER_PAYABLE, COURIER)) == 1_000
    assert await ledger.balance(conn, account(AccountKind.PLATFORM_REVENUE)) == 1_200
    assert await ledger.balance(conn, account(AccountKind.TAX_PAYABLE)) == 1_000
    await service.refund(
        conn,
        gateways(conn),
        intent["id"],
        amount=Money(2_000, "NPR"),
        bearer="merchant",
        request_key="m",
        actor="t",
    )
    assert await ledger.balance(conn, account(AccountKind.MERCHANT_PAYABLE, MERCHANT)) == 6_800 - 1_800
    assert await ledger.balance(conn, account(AccountKind.TAX_PAYABLE)) == 800
    await service.refund(
        conn,
        gateways(conn),
        intent["id"],
        amount=Money(1_000, "NPR"),
        bearer="platform",
        request_key="p",
        actor="t",
    )
    assert await ledger.balance(conn, account(AccountKind.REFUND_EXPENSE)) == 900
    assert await ledger.balance(conn, account(AccountKind.MERCHANT_PAYABLE, MERCHANT)) == 5_000
    await assert_ledger_invariants(conn)


async def test_a_late_authorized_report_never_overwrites_a_capture(conn: Connection) -> None:
    intent = await _authorized(conn)
    await service.capture(conn, gateways(conn), intent["id"], amount=None, actor="t")
    late = ChargeOutcome(ChargeState.AUTHORIZED, intent["provider_ref"])  # type: ignore[arg-type]
    after = await service.apply_outcome(conn, gateways(conn), intent["id"], late, source="webhook", actor="w")
    assert after["status"] == "succeeded"


async def test_cancel_and_expiry(conn: Connection) -> None:
    intent = await _authorized(conn)
    canceled = await service.cancel(conn, gateways(conn), intent["id"], actor="t", reason="customer")
    assert canceled["status"] == "canceled"
    with pytest.raises(Conflict):
        await service.capture(conn, gateways(conn), intent["id"], amount=None, actor="t")
    held = await _authorized(conn)
    report = await service.reconcile(conn, gateways(conn), now=utc_now() + timedelta(days=7, seconds=1))
    assert report.authorizations_expired == 1
    assert (await service.get_intent(conn, held["id"]))["status"] == "canceled"


async def test_wallet_hold_capture_and_release(conn: Connection) -> None:
    await fund_wallet(conn, CUSTOMER, 5_000)
    gws = gateways(conn)
    wallet = AccountRef(AccountKind.CUSTOMER_WALLET, "NPR", CUSTOMER)
    intent = await service.create_intent(
        conn,
        gws,
        service.NewIntent(amount=Money(3_000, "NPR"), provider="wallet", customer_id=CUSTOMER),
        actor="t",
    )
    intent = await service.confirm(conn, gws, intent["id"], payment_method="wallet", actor="t")
    assert intent["status"] == "requires_capture"
    assert await ledger.balance(conn, wallet) == 2_000
    await service.capture(conn, gws, intent["id"], amount=Money(1_000, "NPR"), actor="t")
    assert await ledger.balance(conn, wallet) == 4_000  # the uncaptured 2,000 is released
    too_much = await service.create_intent(
        conn,
        gws,
        service.NewIntent(amount=Money(4_001, "NPR"), provider="wallet", customer_id=CUSTOMER),
        actor="t",
    )
    declined = await service.confirm(conn, gws, too_much["id"], payment_method="wallet", actor="t")
    assert (declined["status"], declined["last_error"]) == ("requires_payment_method", "insufficient_funds")
    await assert_ledger_invariants(conn)
