"""``POST /v1/payment-intents/{id}/refresh`` and ``POST /v1/wallet/payments`` through the API."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.db import Connection
from nearx.settings import Settings
from tests.api.payments.helpers import assert_ledger_invariants, fund_wallet, scalar
from tests.api.profiles.users import auth

Client = AsyncTestClient[Litestar]
CUSTOMER = uuid.UUID(int=0xBEE)


def _headers(settings: Settings, user: uuid.UUID = CUSTOMER, key: str | None = None) -> dict[str, str]:
    return auth(settings, user) | ({"Idempotency-Key": key} if key else {})


async def _timed_out(client: Client, settings: Settings) -> dict[str, Any]:
    created = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": 4_000, "currency": "NPR"},
        headers=_headers(settings, key=f"c-{uuid.uuid4()}"),
    )
    confirmed = await client.post(
        f"/v1/payment-intents/{created.json()['id']}/confirm",
        json={"payment_method": "pm_card_timeout"},
        headers=_headers(settings, key=f"k-{uuid.uuid4()}"),
    )
    assert confirmed.json()["status"] == "processing"
    assert confirmed.json()["last_error"] == "provider_timeout"
    result: dict[str, Any] = confirmed.json()
    return result


async def test_refresh_asks_the_provider_and_is_safe_to_repeat(client: Client, settings: Settings) -> None:
    intent = await _timed_out(client, settings)
    url = f"/v1/payment-intents/{intent['id']}/refresh"
    first = await client.post(url, headers=_headers(settings))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "requires_capture"  # the sandbox had authorized it
    again = await client.post(url, headers=_headers(settings))
    assert again.json() == first.json()


async def test_refresh_of_someone_elses_intent_is_a_404(
    client: Client, conn: Connection, settings: Settings
) -> None:
    intent = await _timed_out(client, settings)
    stranger = await client.post(
        f"/v1/payment-intents/{intent['id']}/refresh", headers=_headers(settings, uuid.uuid4())
    )
    assert stranger.status_code == 404
    assert (
        await scalar(conn, "SELECT status FROM payment_intents WHERE id = %s", intent["id"]) == "processing"
    )


async def test_pay_with_the_wallet_and_a_card_for_the_rest(
    client: Client, conn: Connection, settings: Settings
) -> None:
    await fund_wallet(conn, CUSTOMER, 3_000)
    body = {"amount_minor": 5_000, "currency": "NPR", "card_payment_method": "pm_card_visa"}
    paid = await client.post("/v1/wallet/payments", json=body, headers=_headers(settings, key="p1"))
    assert paid.status_code == 201, paid.text
    parts = [(i["provider"], i["amount_minor"], i["status"]) for i in paid.json()["intents"]]
    assert parts == [("wallet", 3_000, "requires_capture"), ("sandbox", 2_000, "requires_capture")]
    replay = await client.post("/v1/wallet/payments", json=body, headers=_headers(settings, key="p1"))
    assert replay.json() == paid.json()
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 2
    wallet = (await client.get("/v1/wallet", headers=_headers(settings))).json()
    assert (wallet["available_minor"], wallet["held_minor"]) == (0, 3_000)
    await assert_ledger_invariants(conn)


async def test_a_wallet_payment_without_enough_money_or_a_card_is_refused(
    client: Client, conn: Connection, settings: Settings
) -> None:
    await fund_wallet(conn, CUSTOMER, 1_000)
    body = {"amount_minor": 5_000, "currency": "NPR"}
    refused = await client.post("/v1/wallet/payments", json=body, headers=_headers(settings, key="p2"))
    assert refused.status_code == 422
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 0
