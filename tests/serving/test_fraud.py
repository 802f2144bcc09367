"""The fraud scorer on a real fraud champion trained on a small city: decisions, reasons, fallbacks."""

from __future__ import annotations

import pytest

from models.training import FRAUD_ROW_FEATURES
from serving.fraud import FRAUD_MODEL, ROW_COLUMNS, FraudRequest, FraudScore, FraudScorer
from serving.online import OnlineFeatures
from serving.registry import ModelRegistry
from serving.runtime import default_specs
from tests.serving.conftest import TrainedCity


def _takeover(city: TrainedCity) -> FraudRequest:
    """What the simulator's account takeovers look like: a new device, a new SIM, a burst, a big basket."""
    return FraudRequest(
        customer_id=city.customer_ids[0],
        merchant_id=city.merchant_ids[0],
        total_minor=900_000,
        discount_minor=0,
        item_count=9,
        new_device=True,
        phone_changed_recently=True,
        device_orders_1h=6,
        dropoff_from_home_m=9_000,
        promo_code=None,
        payment_method="card",
        category="electronics",
    )


def _ordinary(city: TrainedCity) -> FraudRequest:
    return FraudRequest(
        customer_id=city.customer_ids[0],
        merchant_id=city.merchant_ids[0],
        total_minor=60_000,
        discount_minor=0,
        item_count=2,
        new_device=False,
        phone_changed_recently=False,
        device_orders_1h=1,
        dropoff_from_home_m=40,
        payment_method="cash",
        category="restaurant",
    )


def test_the_scorer_supplies_every_column_training_uses() -> None:
    assert set(ROW_COLUMNS) == set(FRAUD_ROW_FEATURES)


def test_the_champion_decides_with_its_thresholds_and_names_its_reasons(trained_city: TrainedCity) -> None:
    scorer = FraudScorer(trained_city.registry, OnlineFeatures(trained_city.store))
    risky = scorer.score(_takeover(trained_city))
    calm = scorer.score(_ordinary(trained_city))
    assert isinstance(risky, FraudScore), risky
    assert isinstance(calm, FraudScore), calm
    assert (risky.model, risky.version) == (FRAUD_MODEL, "1")
    assert risky.decision in {"step_up", "review"}
    assert calm.decision == "approve"
    assert risky.probability > calm.probability
    assert risky.reasons  # the features whose contributions pushed towards fraud
    assert set(risky.reasons) <= set(trained_city.registry.get(FRAUD_MODEL).inputs)  # type: ignore[union-attr]


def test_no_champion_or_no_online_store_is_a_reason_not_a_guess(trained_city: TrainedCity) -> None:
    empty = ModelRegistry(trained_city.registry.source, {FRAUD_MODEL: default_specs()[FRAUD_MODEL]})
    assert FraudScorer(empty, OnlineFeatures(trained_city.store)).score(_ordinary(trained_city)) == "no_model"
    assert FraudScorer(trained_city.registry, None).score(_ordinary(trained_city)) == "features_unavailable"


@pytest.mark.parametrize("customer", [None, "someone-never-seen"])
def test_an_unknown_customer_is_scored_with_missing_history(
    trained_city: TrainedCity, customer: str | None
) -> None:
    scorer = FraudScorer(trained_city.registry, OnlineFeatures(trained_city.store))
    request = FraudRequest(customer_id=customer, merchant_id=None, total_minor=50_000)
    assert isinstance(scorer.score(request), FraudScore)
