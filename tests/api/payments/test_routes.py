"""The payments HTTP surface: idempotency keys, problem details, and who may do what."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Role
from nearx.db import Connection
from nearx.settings import Settings
from tests.api.payments.helpers import assert_ledger_invariants, scalar
from tests.api.profiles.users import auth

Client = AsyncTestClient[Litestar]
CUSTOMER = uuid.UUID(int=0x1111)


def _headers(settings: Settings, key: str | None, *roles: Role, user: uuid.UUID = CUSTOMER) -> dict[str, str]:
    headers = auth(settings, user, *roles, mfa=bool(roles) and Role.CUSTOMER not in roles)
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def _authorized_intent(client: Client, settings: Settings, amount: int = 10_000) -> dict[str, Any]:
    body = {"amount_minor": amount, "currency": "NPR", "city_id": "kathmandu"}
    created = await client.post(
        "/v1/payment-intents", json=body, headers=_headers(settings, f"c-{uuid.uuid4()}")
    )
    assert created.status_code == 201, created.text
    intent = created.json()
    confirmed = await client.post(
        f"/v1/payment-intents/{intent['id']}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers=_headers(settings, f"k-{uuid.uuid4()}"),
    )
    assert confirmed.status_code == 200, confirmed.text
    result: dict[str, Any] = confirmed.json()
    return result


async def test_create_replays_for_the_same_key_and_refuses_another_body(
    client: Client, conn: Connection, settings: Settings
) -> None:
    body = {"amount_minor": 2_500, "currency": "NPR"}
    first = await client.post("/v1/payment-intents", json=body, headers=_headers(settings, "same"))
    again = await client.post("/v1/payment-intents", json=body, headers=_headers(settings, "same"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.post(
        "/v1/payment-intents", json={**body, "amount_minor": 2_600}, headers=_headers(settings, "same")
    )
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/invalid-input"
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"amount_minor": -5, "currency": "NPR"}, 400),
        ({"amount_minor": 0, "currency": "NPR"}, 400),
        ({"amount_minor": 100, "currency": "XYZ"}, 422),
        ({"amount_minor": 100, "currency": "INR", "city_id": "kathmandu"}, 422),
        ({"amount_minor": 100, "currency": "NPR", "provider": "paypal"}, 422),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(
    client: Client, conn: Connection, settings: Settings, body: dict[str, Any], status: int
) -> None:
    response = await client.post("/v1/payment-intents", json=body, headers=_headers(settings, "bad"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await scalar(conn, "SELECT count(*) FROM payment_intents") == 0
    assert await scalar(conn, "SELECT count(*) FROM idempotency_keys") == 0


async def test_a_missing_idempotency_key_is_refused(client: Client, settings: Settings) -> None:
    response = await client.post(
        "/v1/payment-intents", json={"amount_minor": 1, "currency": "NPR"}, headers=_headers(settings, None)
    )
    assert response.status_code == 422


async def test_capture_and_refund_with_replays_and_limits(
    client: Client, conn: Connection, settings: Settings
) -> None:
    intent = await _authorized_intent(client, settings)
    assert intent["status"] == "requires_capture"
    path = f"/v1/payment-intents/{intent['id']}"
    staff = _headers(settings, "cap-1", Role.SUPPORT)
    customer_try = await client.post(f"{path}/capture", json={}, headers=_headers(settings, "x"))
    assert customer_try.status_code == 403
    over = await client.post(f"{path}/capture", json={"amount_minor": 10_001}, headers=staff)
    assert over.status_code == 422
    assert await scalar(conn, "SELECT count(*) FROM ledger_postings") == 0
    captured = await client.post(f"{path}/capture", json={"amount_minor": 8_000}, headers=staff)
    replay = await client.post(f"{path}/capture", json={"amount_minor": 8_000}, headers=staff)
    assert captured.status_code == replay.status_code == 200
    assert captured.json()["amount_captured"] == replay.json()["amount_captured"] == 8_000
    refund_headers = _headers(settings, "ref-1", Role.SUPPORT)
    body = {"amount_minor": 5_000, "currency": "NPR", "bearer": "merchant"}
    for _ in range(3):  # retried three times, moved once
        refunded = await client.post(f"{path}/refunds", json=body, headers=refund_headers)
        assert refunded.status_code == 201, refunded.text
    too_much = await client.post(
        f"{path}/refunds",
        json={"amount_minor": 3_001, "currency": "NPR"},
        headers=_headers(settings, "ref-2", Role.SUPPORT),
    )
    assert too_much.status_code == 422
    wrong_currency = await client.post(
        f"{path}/refunds",
        json={"amount_minor": 1, "currency": "INR"},
        headers=_headers(settings, "ref-3", Role.SUPPORT),
    )
    assert wrong_currency.status_code == 422
    final = (await client.get(path, headers=_headers(settings, None))).json()
    assert (final["amount_captured"], final["amount_refunded"]) == (8_000, 5_000)
    assert await scalar(conn, "SELECT count(*) FROM payment_refunds") == 1
    await assert_ledger_invariants(conn)


async def test_another_customer_cannot_see_or_confirm_an_intent(client: Client, settings: Settings) -> None:
    intent = await _authorized_intent(client, settings)
    stranger = uuid.UUID(int=0x2222)
    seen = await client.get(
        f"/v1/payment-intents/{intent['id']}", headers=_headers(settings, None, user=stranger)
    )
    assert seen.status_code == 404
    cancel = await client.post(
        f"/v1/payment-intents/{intent['id']}/cancel", json={}, headers=_headers(settings, "c", user=stranger)
    )
    assert cancel.status_code == 404


async def test_an_illegal_transition_is_a_conflict(client: Client, settings: Settings) -> None:
    intent = await _authorized_intent(client, settings)
    again = await client.post(
        f"/v1/payment-intents/{intent['id']}/confirm", json={}, headers=_headers(settings, "again")
    )
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/conflict"
