"""ETA promises and the green option from real ETA and green champions trained on a small city."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.training import ETA_ROW_FEATURES, GREEN_ROW_FEATURES
from nearx.routing import HaversineRouting, elementwise_haversine_m
from serving.eta import ETA_MODEL, GREEN_MODEL, EtaScorer, Trips
from serving.online import OnlineFeatures
from serving.registry import ModelRegistry
from tests.serving.conftest import TrainedCity

KATHMANDU = (27.7172, 85.3240)


def _trips(city: TrainedCity, n: int = 8) -> Trips:
    rng = np.random.default_rng(3)
    lat = KATHMANDU[0] + rng.uniform(-0.02, 0.02, n)
    lng = KATHMANDU[1] + rng.uniform(-0.02, 0.02, n)
    return Trips(
        merchant_ids=list(city.merchant_ids[:n]),
        merchant_cells_r7=[""] * n,
        categories=["restaurant"] * n,
        merchant_lat=lat,
        merchant_lng=lng,
        dropoff_lat=lat + 0.015,
        dropoff_lng=lng + 0.01,
        prep_s=np.full(n, 900.0),
        at=datetime(2026, 1, 12, 7, 0, tzinfo=UTC),
        local_hour=13,
        weekday=1,
    )


def _scorer(registry: ModelRegistry, city: TrainedCity) -> EtaScorer:
    return EtaScorer(
        registry, OnlineFeatures(city.store), HaversineRouting("kathmandu", "Asia/Kathmandu"), "NP"
    )


def test_serving_supplies_every_row_feature_of_training(trained_city: TrainedCity) -> None:
    for name, row_features in ((ETA_MODEL, ETA_ROW_FEATURES), (GREEN_MODEL, GREEN_ROW_FEATURES)):
        assert set(row_features) <= trained_city.registry.spec(name).supplied
        assert trained_city.registry.status[name].last_error is None
        assert trained_city.registry.get(name) is not None  # the real champion passed its signature check


def test_the_promise_comes_from_the_eta_champion(trained_city: TrainedCity) -> None:
    promise = _scorer(trained_city.registry, trained_city).promise(_trips(trained_city))
    assert (promise.model, promise.version, promise.degraded) == (ETA_MODEL, "1", None)
    assert np.all(promise.p90_s >= promise.p50_s)
    assert np.all(promise.p50_s > 0)


class _Recording:
    """The real model underneath the pyfunc (what serving calls), keeping the frames it was given."""

    def __init__(self, pyfunc: Any) -> None:
        self.metadata = pyfunc.metadata
        self.model = pyfunc._model_impl.python_model
        self._model_impl = self
        self.python_model = self
        self.frames: list[pd.DataFrame] = []

    def predict(self, context: Any, frame: pd.DataFrame) -> Any:
        self.frames.append(frame)
        return self.model.predict(context, frame)


def _recording(city: TrainedCity, name: str) -> tuple[ModelRegistry, _Recording]:
    model = city.registry.get(name)
    assert model is not None
    recorder = _Recording(model.pyfunc)
    registry = ModelRegistry(city.registry.source, {})
    registry._models = {name: replace(model, pyfunc=recorder)}
    return registry, recorder


def test_the_distance_sent_is_the_road_estimate_not_the_straight_line(trained_city: TrainedCity) -> None:
    registry, recorder = _recording(trained_city, ETA_MODEL)
    trips = _trips(trained_city)
    promise = _scorer(registry, trained_city).promise(trips)
    assert promise.degraded is None
    straight = elementwise_haversine_m(
        np.column_stack((trips.merchant_lat, trips.merchant_lng)),
        np.column_stack((trips.dropoff_lat, trips.dropoff_lng)),
    )
    circuity = HaversineRouting("kathmandu", "Asia/Kathmandu").profile.circuity_for("kathmandu")
    assert recorder.frames[0]["distance_m"].to_numpy() == pytest.approx(straight * circuity)


def test_the_green_model_is_asked_about_the_promise_shown(trained_city: TrainedCity) -> None:
    registry, recorder = _recording(trained_city, GREEN_MODEL)
    scorer = _scorer(trained_city.registry, trained_city)
    trips = _trips(trained_city)
    promise = scorer.promise(trips)
    green = _scorer(registry, trained_city).green(trips, promise)
    assert (green.model, green.degraded) == (GREEN_MODEL, None)
    assert recorder.frames[0]["promised_s"].to_numpy() == pytest.approx(promise.p90_s)
    tight = _scorer(registry, trained_city).green(trips, replace(promise, p90_s=promise.p50_s * 0.5))
    assert tight.p_on_time.mean() < green.p_on_time.mean()  # a tighter promise is harder to keep
