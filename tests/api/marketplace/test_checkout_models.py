"""Checkout scored by real champions: the fraud and ETA models trained on a small city, loaded by
the app's own scoring runtime from its home (MLflow registry and Feast online store)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from litestar import Litestar

from api.domains.delivery.eta import city_eta
from api.domains.payments.fraud import FraudContext, FraudDecision
from nearx.clock import utc_now
from nearx.dispatch import RoutingEta
from nearx.ids import new_id
from nearx.money import Money
from nearx.routing import Mode
from nearx.settings import Settings, load_settings
from serving.dispatch import ModelEta
from tests.api.marketplace.test_checkout_scoring import Client, checkout, customer, momo  # noqa: F401
from tests.serving.conftest import TrainedCity, trained_city  # noqa: F401


@pytest.fixture
def settings(trained_city: TrainedCity) -> Settings:  # noqa: F811
    return load_settings({"NEARX_HOME": str(trained_city.city.settings.home)})


async def test_the_champions_score_the_checkout_and_name_themselves(
    app: Litestar,
    client: Client,
    conn: Any,
    momo: str,  # noqa: F811
) -> None:
    await asyncio.to_thread(app.state.scoring.refresh)
    app.state.scoring.budget_s = 30.0  # a cold first read of the online store is not what this tests
    who = await customer(app, conn)
    response = await checkout(client, who, momo, quantity=3, payment_method="wallet")
    assert response.status_code in (201, 403, 409), response.text
    stored = await (
        await conn.execute("SELECT * FROM checkout_fraud_assessments WHERE customer_id = %s", (who.user_id,))
    ).fetchone()
    assert stored["scorer"] == "nearx-fraud@1", stored["degraded"]
    assert stored["degraded"] is None
    assert 0.0 <= stored["score"] <= 1.0
    assert set(stored["reasons"]) <= set(app.state.scoring.registry.get("nearx-fraud").inputs)
    if response.status_code == 201:
        (child,) = response.json()["merchant_orders"]
        assert (child["eta"]["model"], child["eta"]["degraded"]) == ("nearx-eta@1", None)
        assert child["eta"]["p50_s"] <= child["eta"]["p90_s"]


async def test_over_the_budget_the_rules_decide_and_say_why(
    app: Litestar,
    client: Client,
    conn: Any,
    momo: str,  # noqa: F811
) -> None:
    await asyncio.to_thread(app.state.scoring.refresh)
    app.state.scoring.budget_s = 0.0
    who = await customer(app, conn)
    response = await checkout(client, who, momo)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["fraud"]["scorer"] == "rules"
    assert order["merchant_orders"][0]["eta"]["degraded"] == "over_budget"
    stored = await (
        await conn.execute(
            "SELECT degraded FROM checkout_fraud_assessments WHERE customer_id = %s", (who.user_id,)
        )
    ).fetchone()
    assert stored["degraded"] == "over_budget"


async def test_the_payment_gate_asks_the_model_and_falls_back_to_the_rules(
    app: Litestar,
    client: Client,  # the client runs the lifespan that builds the scorers
) -> None:
    await asyncio.to_thread(app.state.scoring.refresh)
    app.state.scoring.budget_s = 30.0
    context = FraudContext(
        intent_id=new_id(),
        customer_id=new_id(),
        amount=Money(60_000_00, "NPR"),
        provider="stripe",
        purpose="payment",
        recent_declines=0,
        succeeded_payments=0,
    )
    scored = await app.state.fraud_scorer.assess(context)
    assert scored.scorer == "nearx-fraud@1"
    assert 0.0 <= scored.score <= 1.0
    app.state.scoring.budget_s = 0.0
    fallback = await app.state.fraud_scorer.assess(context)
    assert fallback.scorer == "rules"
    assert fallback.decision == FraudDecision.STEP_UP  # a first payment this large
    assert fallback.reasons == ("large_amount", "degraded:over_budget")


async def test_dispatch_and_the_door_eta_ask_the_models_while_the_app_runs(
    app: Litestar,
    client: Client,
) -> None:
    await asyncio.to_thread(app.state.scoring.refresh)
    city = {"id": "kathmandu", "timezone": "Asia/Kathmandu", "country": "NP "}
    predictor = city_eta(city)
    assert isinstance(predictor, ModelEta)
    predictor.travel(np.array([[27.71, 85.32]]), np.array([[27.72, 85.33]]), [Mode.BICYCLE], utc_now())
    assert predictor.degraded is None  # the ETA champion priced the leg


def test_without_the_app_dispatch_uses_the_routing_provider() -> None:
    assert isinstance(city_eta({"id": "kathmandu", "timezone": "Asia/Kathmandu"}), RoutingEta)
