"""The Stripe adapter against a local fake that follows Stripe's documented API."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from api.domains.payments import service
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.gateways.stripe import InvalidSignature, StripeGateway
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.fakes.server import serve
from tests.api.payments.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from tests.api.payments.helpers import assert_ledger_invariants

CUSTOMER = uuid.UUID(int=42)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeStripe, StripeGateway]]:
    stripe = FakeStripe()
    async with serve(stripe.app()) as url, httpx.AsyncClient(base_url=url, timeout=0.3) as client:
        yield stripe, StripeGateway(client, secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET)


async def _confirmed(conn: Connection, gateways: dict[str, Gateway], method: str) -> dict[str, object]:
    intent = await service.create_intent(
        conn,
        gateways,
        service.NewIntent(amount=Money(10_000, "INR"), provider="stripe", customer_id=CUSTOMER),
        actor="t",
    )
    return await service.confirm(conn, gateways, intent["id"], payment_method=method, actor="t")  # type: ignore[arg-type]


async def test_authorize_partial_capture_and_refunds(
    conn: Connection, fake: tuple[FakeStripe, StripeGateway]
) -> None:
    stripe, gateway = fake
    gateways: dict[str, Gateway] = {"stripe": gateway}
    intent = await _confirmed(conn, gateways, "pm_card_visa")
    assert intent["status"] == "requires_capture"
    assert stripe.intents[str(intent["provider_ref"])]["capture_method"] == "manual"
    done = await service.capture(conn, gateways, intent["id"], amount=Money(7_000, "INR"), actor="t")  # type: ignore[arg-type]
    assert (done["status"], done["amount_captured"]) == ("succeeded", 7_000)
    for key in ("a", "b"):
        refund = await service.refund(
            conn,
            gateways,
            done["id"],
            amount=Money(3_000, "INR"),
            bearer="platform",
            request_key=key,
            actor="t",
        )
        assert refund["status"] == "succeeded"
    assert stripe.intents[done["provider_ref"]]["amount_refunded"] == 6_000
    await assert_ledger_invariants(conn)


async def test_a_decline_is_reported_with_its_code(
    conn: Connection, fake: tuple[FakeStripe, StripeGateway]
) -> None:
    _, gateway = fake
    intent = await _confirmed(conn, {"stripe": gateway}, "pm_card_chargeDeclined")
    assert (intent["status"], intent["last_error"]) == ("requires_payment_method", "generic_decline")


async def test_a_timeout_is_retried_then_settled_by_reconcile(
    conn: Connection, fake: tuple[FakeStripe, StripeGateway]
) -> None:
    stripe, gateway = fake
    gateways: dict[str, Gateway] = {"stripe": gateway}
    intent = await _confirmed(conn, gateways, "pm_card_timeout")
    assert intent["status"] == "processing"
    assert len(stripe.intents) == 1  # retried with the same Idempotency-Key: charged once
    await service.reconcile(conn, gateways, older_than=timedelta(0))
    settled = await service.get_intent(conn, intent["id"])  # type: ignore[arg-type]
    assert settled["status"] == "requires_capture"
    assert settled["provider_ref"] in stripe.intents


async def test_webhooks_are_verified_deduplicated_and_never_move_backwards(
    conn: Connection, fake: tuple[FakeStripe, StripeGateway]
) -> None:
    stripe, gateway = fake
    gateways: dict[str, Gateway] = {"stripe": gateway}
    intent = await _confirmed(conn, gateways, "pm_card_visa")
    ref = str(intent["provider_ref"])
    stripe.intents[ref].update(status="succeeded", amount_received=10_000)  # captured in the Stripe dashboard
    body, headers = stripe.event("payment_intent.succeeded", ref, event_id="evt_1")
    event = gateway.parse_webhook(body, headers)
    assert await service.handle_webhook(conn, gateways, "stripe", event) == "applied"
    assert await service.handle_webhook(conn, gateways, "stripe", event) == "duplicate"
    stripe.intents[ref].update(status="requires_capture")
    late = gateway.parse_webhook(
        *stripe.event("payment_intent.amount_capturable_updated", ref, event_id="evt_0")
    )
    assert await service.handle_webhook(conn, gateways, "stripe", late) == "stale"
    final = await service.get_intent(conn, intent["id"])  # type: ignore[arg-type]
    assert (final["status"], final["amount_captured"]) == ("succeeded", 10_000)
    await assert_ledger_invariants(conn)


async def test_forged_and_replayed_webhooks_are_refused(fake: tuple[FakeStripe, StripeGateway]) -> None:
    stripe, gateway = fake
    stripe.intents["pi_x"] = {"id": "pi_x", "status": "succeeded", "amount_received": 1}
    body, headers = stripe.event("payment_intent.succeeded", "pi_x", secret="whsec_not_ours")
    with pytest.raises(InvalidSignature, match="no v1 signature"):
        gateway.parse_webhook(body, headers)
    body, headers = stripe.event("payment_intent.succeeded", "pi_x")
    with pytest.raises(InvalidSignature, match="no v1 signature"):
        gateway.parse_webhook(body.replace(b'"amount_received": 1', b'"amount_received": 9'), headers)
    stale_body, stale_headers = stripe.event(
        "payment_intent.succeeded", "pi_x", timestamp=int(time.time()) - 3600
    )
    with pytest.raises(InvalidSignature, match="tolerance"):
        gateway.parse_webhook(stale_body, stale_headers)
