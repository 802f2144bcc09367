"""Wallet routes (balance, top-ups under KYC limits) and the provider webhook route."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from nearx.db import Connection
from nearx.settings import Settings, load_settings
from tests.api.payments.fakes.server import serve
from tests.api.payments.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from tests.api.payments.helpers import assert_ledger_invariants, scalar
from tests.api.profiles.users import auth

Client = AsyncTestClient[Litestar]
USER = uuid.UUID(int=0x5151)


async def test_top_up_then_spend_from_the_wallet(
    client: Client, conn: Connection, settings: Settings
) -> None:
    headers = {**auth(settings, USER), "Idempotency-Key": "top-1"}
    body = {"amount_minor": 200_000, "currency": "NPR", "payment_method": "pm_card_visa"}
    topped = await client.post("/v1/wallet/top-ups", json=body, headers=headers)
    replay = await client.post("/v1/wallet/top-ups", json=body, headers=headers)
    assert topped.status_code == replay.status_code == 201, topped.text
    assert topped.json()["status"] == replay.json()["status"] == "succeeded"
    wallet = (await client.get("/v1/wallet", headers=auth(settings, USER))).json()
    assert (wallet["available_minor"], wallet["kyc_tier"]) == (200_000, 0)
    spend = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": 50_000, "currency": "NPR", "provider": "wallet"},
        headers={**auth(settings, USER), "Idempotency-Key": "spend-1"},
    )
    confirmed = await client.post(
        f"/v1/payment-intents/{spend.json()['id']}/confirm",
        json={"payment_method": "wallet"},
        headers={**auth(settings, USER), "Idempotency-Key": "spend-1c"},
    )
    assert confirmed.json()["status"] == "requires_capture"
    wallet = (await client.get("/v1/wallet", headers=auth(settings, USER))).json()
    assert (wallet["available_minor"], wallet["held_minor"]) == (150_000, 50_000)
    await assert_ledger_invariants(conn)


async def test_a_top_up_over_the_kyc_limit_is_refused_and_writes_nothing(
    client: Client, conn: Connection, settings: Settings
) -> None:
    body = {"amount_minor": 500_001, "currency": "NPR", "payment_method": "pm_card_visa"}
    response = await client.post(
        "/v1/wallet/top-ups", json=body, headers={**auth(settings, USER), "Idempotency-Key": "big"}
    )
    assert response.status_code == 422
    assert response.json()["limit"] == "max_top_up"
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 0
    assert await scalar(conn, "SELECT count(*) FROM idempotency_keys") == 0


@pytest.fixture
async def stripe_app(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[FakeStripe, Client, Settings]]:
    fake = FakeStripe()
    async with serve(fake.app()) as url:
        settings = load_settings(
            {
                "NEARX_HOME": str(tmp_path / "nearx"),
                "NEARX_STRIPE_SECRET_KEY": SECRET_KEY,
                "NEARX_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "NEARX_STRIPE_BASE_URL": url,
            }
        )
        async with AsyncTestClient(app=create_app(settings, db_url=db_url)) as client:
            yield fake, client, settings


async def test_stripe_webhooks_over_http(stripe_app: tuple[FakeStripe, Client, Settings]) -> None:
    fake, client, settings = stripe_app
    created = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": 9_000, "currency": "INR", "provider": "stripe"},
        headers={**auth(settings, USER), "Idempotency-Key": "s1"},
    )
    intent = (
        await client.post(
            f"/v1/payment-intents/{created.json()['id']}/confirm",
            json={"payment_method": "pm_card_visa"},
            headers={**auth(settings, USER), "Idempotency-Key": "s1c"},
        )
    ).json()
    assert intent["status"] == "requires_capture"
    [ref] = fake.intents
    fake.intents[ref].update(status="succeeded", amount_received=9_000)
    body, headers = fake.event("payment_intent.succeeded", ref, event_id="evt_http")
    first = await client.post("/v1/payment-webhooks/stripe", content=body, headers=headers)
    again = await client.post("/v1/payment-webhooks/stripe", content=body, headers=headers)
    assert (first.status_code, first.json()) == (200, {"result": "applied"})
    assert again.json() == {"result": "duplicate"}
    forged_body, forged_headers = fake.event("payment_intent.canceled", ref, secret="whsec_someone_else")
    forged = await client.post("/v1/payment-webhooks/stripe", content=forged_body, headers=forged_headers)
    assert forged.status_code == 400
    assert forged.json()["type"] == "/problems/bad-signature"
    unknown = await client.post("/v1/payment-webhooks/paypal", content=b"{}")
    assert unknown.status_code == 404
    final = (await client.get(f"/v1/payment-intents/{intent['id']}", headers=auth(settings, USER))).json()
    assert (final["status"], final["amount_captured"]) == ("succeeded", 9_000)
