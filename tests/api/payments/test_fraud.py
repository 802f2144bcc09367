"""The fraud gate through the API: approve, step-up (needs a second factor), manual review."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.payments.fraud import FraudAssessment, FraudContext, FraudDecision, RulesFraudScorer
from api.security.principal import Role
from nearx.db import Connection
from nearx.settings import Settings
from tests.api.payments.helpers import scalar
from tests.api.profiles.users import auth

Client = AsyncTestClient[Litestar]
CUSTOMER = uuid.UUID(int=0xF00D)


@dataclass
class FixedScorer:
    """A scorer port implementation that always answers the same (stands in for a model)."""

    decision: FraudDecision
    score: float
    reasons: tuple[str, ...]
    seen: list[FraudContext]

    async def assess(self, context: FraudContext) -> FraudAssessment:
        self.seen.append(context)
        return FraudAssessment(self.decision, self.score, self.reasons, "fixed")


def _customer(settings: Settings, *, mfa: bool = False) -> dict[str, str]:
    return auth(settings, CUSTOMER, mfa=mfa)


async def _intent(client: Client, settings: Settings, amount: int) -> dict[str, Any]:
    created = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": amount, "currency": "NPR", "city_id": "kathmandu"},
        headers={**_customer(settings), "Idempotency-Key": f"c-{uuid.uuid4()}"},
    )
    assert created.status_code == 201, created.text
    intent: dict[str, Any] = created.json()
    return intent


async def _confirm(client: Client, headers: dict[str, str], intent_id: str) -> Any:
    return await client.post(
        f"/v1/payment-intents/{intent_id}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers={**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"},
    )


async def _assessments(conn: Connection, intent_id: str) -> list[dict[str, Any]]:
    return list(
        await (
            await conn.execute(
                "SELECT scorer, score, decision, reasons, decided_by FROM payment_fraud_assessments "
                "WHERE intent_id = %s ORDER BY id",
                (intent_id,),
            )
        ).fetchall()
    )


@pytest.fixture
def rules(app: Litestar, client: Client) -> None:
    """Pin the rules scorer, whatever the app was composed with, so the scores are known."""
    app.state.fraud_scorer = RulesFraudScorer()


async def test_an_ordinary_payment_is_approved_and_the_assessment_stored(
    client: Client, conn: Connection, settings: Settings, rules: None
) -> None:
    intent = await _intent(client, settings, 2_000)
    confirmed = await _confirm(client, _customer(settings), intent["id"])
    assert confirmed.json()["status"] == "requires_capture"
    assert await _assessments(conn, intent["id"]) == [
        {"scorer": "rules", "score": 0.0, "decision": "approve", "reasons": [], "decided_by": None}
    ]


async def test_a_step_up_is_refused_without_a_second_factor_and_completes_with_one(
    client: Client, conn: Connection, settings: Settings, rules: None
) -> None:
    intent = await _intent(client, settings, 60_000_00)  # large for a first-time customer
    stepped = await _confirm(client, _customer(settings), intent["id"])
    assert stepped.status_code == 200
    assert stepped.json()["status"] == "requires_action"
    assert stepped.json()["last_error"] == "step_up_required"
    assert stepped.json()["action_url"] == f"nearx://step-up/{intent['id']}"

    bypass = await _confirm(client, _customer(settings), intent["id"])
    assert bypass.status_code == 403
    assert bypass.json()["type"] == "/problems/step-up-required"
    still = await client.get(f"/v1/payment-intents/{intent['id']}", headers=_customer(settings))
    assert still.json()["status"] == "requires_action"
    assert await scalar(conn, "SELECT count(*) FROM sandbox_gateway_charges") == 0

    done = await _confirm(client, _customer(settings, mfa=True), intent["id"])
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "requires_capture"
    assert await _assessments(conn, intent["id"]) == [
        {
            "scorer": "rules",
            "score": 0.5,
            "decision": "step_up",
            "reasons": ["large_amount"],
            "decided_by": None,
        }
    ]


async def test_a_session_with_a_second_factor_passes_a_step_up_at_once(
    client: Client, settings: Settings, rules: None
) -> None:
    intent = await _intent(client, settings, 60_000_00)
    confirmed = await _confirm(client, _customer(settings, mfa=True), intent["id"])
    assert confirmed.json()["status"] == "requires_capture"


async def test_a_review_holds_the_payment_until_support_decides(
    app: Litestar, client: Client, conn: Connection, settings: Settings
) -> None:
    scorer = FixedScorer(FraudDecision.REVIEW, 0.93, ("model:velocity", "new_device"), [])
    app.state.fraud_scorer = scorer
    approved, rejected = await _intent(client, settings, 3_000), await _intent(client, settings, 4_000)
    for intent in (approved, rejected):
        held = await _confirm(client, _customer(settings, mfa=True), intent["id"])
        assert held.json()["status"] == "requires_payment_method"
        assert held.json()["last_error"] == "under_review"
    assert scorer.seen[0].intent_id == uuid.UUID(approved["id"])
    assert scorer.seen[0].amount.amount_minor == 3_000
    waiting = await _confirm(client, _customer(settings, mfa=True), approved["id"])
    assert waiting.status_code == 409

    support = auth(settings, uuid.uuid4(), Role.SUPPORT, mfa=True)
    assert (await client.get("/v1/admin/payment-reviews", headers=_customer(settings))).status_code == 403
    queue = (await client.get("/v1/admin/payment-reviews", headers=support)).json()
    assert [(r["intent"]["id"], r["score"], r["reasons"], r["scorer"]) for r in queue["items"]] == [
        (approved["id"], 0.93, ["model:velocity", "new_device"], "fixed"),
        (rejected["id"], 0.93, ["model:velocity", "new_device"], "fixed"),
    ]

    url = "/v1/admin/payment-reviews/{}/decision"
    ok = await client.post(url.format(approved["id"]), json={"decision": "approve"}, headers=support)
    assert ok.status_code == 200
    assert ok.json()["last_error"] is None
    no = await client.post(url.format(rejected["id"]), json={"decision": "reject"}, headers=support)
    assert no.json()["status"] == "canceled"
    again = await client.post(url.format(approved["id"]), json={"decision": "reject"}, headers=support)
    assert again.status_code == 409
    assert (await client.get("/v1/admin/payment-reviews", headers=support)).json()["items"] == []

    events = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'payment.review_decided' ORDER BY position"
        )
    ).fetchall()
    assert [(e["payload"]["intent_id"], e["payload"]["decision"]) for e in events] == [
        (approved["id"], "approve"),
        (rejected["id"], "reject"),
    ]
    assert events[0]["payload"]["score"] == 0.93
    assert events[0]["payload"]["scorer"] == "fixed"
    assert events[0]["payload"]["reasons"] == ["model:velocity", "new_device"]

    paid = await _confirm(client, _customer(settings), approved["id"])
    assert paid.json()["status"] == "requires_capture"
    assert len(scorer.seen) == 2  # the approved payment is not scored again
    decided = await _assessments(conn, approved["id"])
    assert decided[-1]["decision"] == "approve"
    assert decided[-1]["decided_by"].startswith("user:")


async def test_a_wallet_top_up_asks_the_same_scorer(
    app: Litestar, client: Client, settings: Settings
) -> None:
    scorer = FixedScorer(FraudDecision.STEP_UP, 0.6, ("model:first_top_up",), [])
    app.state.fraud_scorer = scorer
    response = await client.post(
        "/v1/wallet/top-ups",
        json={"amount_minor": 1_000, "currency": "NPR", "payment_method": "pm_card_visa"},
        headers={**_customer(settings), "Idempotency-Key": "t1"},
    )
    assert response.json()["status"] == "requires_action"
    assert [c.purpose for c in scorer.seen] == ["topup"]
