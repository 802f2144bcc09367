"""Fraud scores at checkout and payment authorisation, from the fraud model of the registry.

The champion (``models:/nearx-fraud@champion``, a :class:`models.fraud.FraudModel`) gets
the order's request columns plus the online features of its FeatureService (``fraud_v1``:
the customer's 90-day history and the merchant's volume) and answers, per row, a
calibrated probability, a decision from the thresholds chosen at training (approve /
step-up / review, by expected cost) and its reason codes (the features whose LightGBM
contributions pushed towards fraud).

The scorer never guesses a fallback: it answers a :class:`FraudScore` or the reason it
could not (``no_model``, ``features_unavailable``, ``model_error``; the runtime adds
``over_budget``), and the caller applies its own rules. The API's rules live in
``api/``, which serving must not import.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from serving import metrics
from serving.online import FeaturesUnavailable, OnlineFeatures
from serving.registry import LoadedModel, ModelRegistry, ModelSpec

FRAUD_MODEL = "nearx-fraud"
FRAUD_SERVICE = "fraud_v1"
DECISIONS = frozenset({"approve", "step_up", "review"})
ROW_COLUMNS = (
    "total_minor",
    "discount_minor",
    "item_count",
    "new_device",
    "phone_changed_recently",
    "device_orders_1h",
    "dropoff_from_home_m",
    "promo_code",
    "payment_method",
    "category",
)
"""The request columns the scorer builds (``models.training.FRAUD_ROW_FEATURES``; a test pins them)."""
NO_PROMO = "none"
"""How training spells an order without a promotion code."""


@dataclass(frozen=True)
class FraudRequest:
    """What is known about one order or payment; ``None`` is sent to the model as missing."""

    customer_id: str | None
    merchant_id: str | None
    total_minor: float
    discount_minor: float | None = None
    item_count: float | None = None
    new_device: bool | None = None
    phone_changed_recently: bool | None = None
    device_orders_1h: float | None = None
    """Orders from this device in the last hour, this one included."""
    dropoff_from_home_m: float | None = None
    promo_code: str | None = None
    payment_method: str | None = None
    """``card``, ``wallet`` or ``cash`` (the model's categories); unknown values count as missing."""
    category: str | None = None


@dataclass(frozen=True)
class FraudScore:
    decision: str
    probability: float
    reasons: tuple[str, ...]
    model: str
    version: str


def fraud_spec(features: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        FRAUD_MODEL, frozenset((*ROW_COLUMNS, *features)), ("fraud_probability", "decision", "reasons")
    )


class FraudScorer:
    def __init__(self, registry: ModelRegistry, online: OnlineFeatures | None) -> None:
        self.registry = registry
        self.online = online

    def score(self, request: FraudRequest) -> FraudScore | str:
        """The model's verdict on ``request``, or the reason (a ``degraded`` code) it has none."""
        started = time.perf_counter()
        result = self._score(request)
        if isinstance(result, str):
            metrics.DEGRADED.labels("fraud", result).inc()
        else:
            metrics.SCORED.labels(result.model, result.version).inc()
        metrics.SCORING_SECONDS.labels("fraud").observe(time.perf_counter() - started)
        return result

    def _score(self, request: FraudRequest) -> FraudScore | str:
        model = self.registry.get(FRAUD_MODEL)
        if model is None:
            return "no_model"
        if self.online is None:
            return "features_unavailable"
        try:
            features = self.online.get(
                model.feature_service or FRAUD_SERVICE,
                {"customer_id": [request.customer_id or ""], "merchant_id": [request.merchant_id or ""]},
            )
        except FeaturesUnavailable:
            return "features_unavailable"
        try:
            out = model.predict(pd.DataFrame({**features, **_row_columns(request)}))
            return _verdict(model, out)
        except Exception:  # a model that cannot score this order must not fail it: the caller's rules do
            return "model_error"


def _row_columns(request: FraudRequest) -> dict[str, list[object]]:
    def number(value: float | bool | None) -> list[object]:
        return [math.nan if value is None else float(value)]

    return {
        "total_minor": number(request.total_minor),
        "discount_minor": number(request.discount_minor),
        "item_count": number(request.item_count),
        "new_device": number(request.new_device),
        "phone_changed_recently": number(request.phone_changed_recently),
        "device_orders_1h": number(request.device_orders_1h),
        "dropoff_from_home_m": number(request.dropoff_from_home_m),
        "promo_code": [request.promo_code or NO_PROMO],
        "payment_method": [request.payment_method],
        "category": [request.category],
    }


def _verdict(model: LoadedModel, out: pd.DataFrame) -> FraudScore:
    decision = str(out["decision"].iloc[0])
    if decision not in DECISIONS:
        raise ValueError(f"the fraud model decided {decision!r}")
    probability = float(np.clip(float(out["fraud_probability"].iloc[0]), 0.0, 1.0))
    joined = out["reasons"].iloc[0]
    reasons = tuple(r for r in joined.split(";") if r) if isinstance(joined, str) else ()
    return FraudScore(decision, probability, reasons, model.name, model.version)
