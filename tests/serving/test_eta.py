"""ETA promises and the green option from real ETA and green champions trained on a small city."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from models.training import ETA_ROW_FEATURES, GREEN_ROW_FEATURES
from nearx.routing import HaversineRouting, Mode, elementwise_haversine_m
from serving.eta import ETA_MODEL, GREEN_MIN_P_ON_TIME, GREEN_MODEL, EtaScorer, Trips
from serving.online import Columns, OnlineFeatures
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


def _top_results(city: TrainedCity, n: int = 20) -> Trips:
    """A match's top results: real merchants (their H3 cells and categories, one the models never
    saw), a courier unknown to the store, at a rainy Saturday evening peak."""
    merchants = pl.read_parquet(city.city.raw_paths()["merchants"]).head(n)
    categories = merchants["category"].to_list()
    categories[-1] = "florist"
    lat, lng = merchants["lat"].to_numpy(), merchants["lng"].to_numpy()
    return Trips(
        merchant_ids=merchants["merchant_id"].to_list(),
        merchant_cells_r7=merchants["h3_r7"].to_list(),
        categories=categories,
        merchant_lat=lat,
        merchant_lng=lng,
        dropoff_lat=np.full(n, KATHMANDU[0]),
        dropoff_lng=np.full(n, KATHMANDU[1]),
        prep_s=np.full(n, 900.0),
        at=datetime(2026, 1, 10, 13, 30, tzinfo=UTC),
        local_hour=19,
        weekday=6,
        rain=True,
    )


def _frame(city: TrainedCity, service: str, trips: Trips, mode: Mode, **extra: Any) -> pd.DataFrame:
    """The scorer's input as it was before the fast path: one pandas frame of the service's online
    features and the row columns, plus Feast's transformation of the order context (as registered)."""
    n = len(trips)
    hour = f"@{trips.local_hour:02d}"
    keys = {
        "merchant_id": list(trips.merchant_ids),
        "merchant_hour": [m + hour for m in trips.merchant_ids],
        "cell_hour": [c + hour for c in trips.merchant_cells_r7],
        "courier_id": [""] * n,
    }
    road_m, _ = HaversineRouting("kathmandu", "Asia/Kathmandu").pairs(
        np.column_stack((trips.merchant_lat, trips.merchant_lng)),
        np.column_stack((trips.dropoff_lat, trips.dropoff_lng)),
        Mode.MOTORBIKE,
        trips.at,
    )
    frame = pd.DataFrame(
        {
            **OnlineFeatures(city.store).get(service, keys),
            "distance_m": road_m,
            "mode": [str(mode)] * n,
            "category": list(trips.categories),
            "local_hour": np.full(n, trips.local_hour),
            "weekday": np.full(n, trips.weekday),
            "rain": np.full(n, int(trips.rain)),
            "merchant_lat": trips.merchant_lat,
            "merchant_lng": trips.merchant_lng,
            "dropoff_lat": trips.dropoff_lat,
            "dropoff_lng": trips.dropoff_lng,
            **extra,
        }
    )
    transformation = city.store.get_on_demand_feature_view("order_context").feature_transformation
    return pd.concat([frame, transformation.transform(frame)], axis=1)


def test_the_fast_path_answers_what_the_pyfunc_and_the_sklearn_models_did(trained_city: TrainedCity) -> None:
    trips = _top_results(trained_city)
    promise, green = _scorer(trained_city.registry, trained_city).promise_and_green(trips)
    assert (promise.degraded, green.degraded) == (None, None)
    eta, green_model = trained_city.registry.get(ETA_MODEL), trained_city.registry.get(GREEN_MODEL)
    assert eta is not None
    assert green_model is not None
    eta_frame = _frame(trained_city, "eta_v1", trips, Mode.MOTORBIKE)[list(eta.inputs)]
    eta_impl = eta.pyfunc._model_impl.python_model
    eta_out = eta_impl.predict(None, eta_frame)  # the pyfunc's pandas predict
    x = eta_impl.matrix.to_pandas(eta_frame)  # the sklearn models on pandas categoricals, as before
    p50 = np.maximum(eta_impl.p50.predict(x), 60.0)
    p90 = np.maximum(eta_impl.p90.predict(x) + eta_impl.p90_shift_s, p50)
    for expected_p50, expected_p90 in ((eta_out["eta_p50_s"], eta_out["eta_p90_s"]), (p50, p90)):
        np.testing.assert_array_equal(promise.p50_s, expected_p50)
        np.testing.assert_array_equal(promise.p90_s, expected_p90)
    green_frame = _frame(trained_city, "green_v1", trips, Mode.E_BIKE, promised_s=promise.p90_s)
    green_frame = green_frame[list(green_model.inputs)]
    green_impl = green_model.pyfunc._model_impl.python_model
    p_on_time = green_impl.classifier.predict_proba(green_impl.matrix.to_pandas(green_frame))[:, 1]
    for expected in (green_impl.predict(None, green_frame)["p_on_time"], p_on_time):
        np.testing.assert_array_equal(green.p_on_time, expected)
    np.testing.assert_array_equal(green.available, p_on_time >= GREEN_MIN_P_ON_TIME)
    assert 0 < green.available.sum() < len(trips)  # the answer is not trivially all or nothing


class _CountingOnline(OnlineFeatures):
    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reads: list[str] = []

    def get(
        self, service_name: str, keys: Mapping[str, Sequence[str]], *, cached_only: bool = False
    ) -> Columns:
        self.reads.append(service_name)
        return super().get(service_name, keys, cached_only=cached_only)


def test_a_match_reads_its_results_features_once_for_both_models(trained_city: TrainedCity) -> None:
    trips = _top_results(trained_city)
    routing = HaversineRouting("kathmandu", "Asia/Kathmandu")
    online = _CountingOnline(trained_city.store)
    promise, green = EtaScorer(trained_city.registry, online, routing, "NP").promise_and_green(trips)
    assert online.reads == ["eta_v1"]  # green_v1's features are all among eta_v1's
    apart = EtaScorer(trained_city.registry, _CountingOnline(trained_city.store), routing, "NP")
    alone = apart.promise(trips)
    np.testing.assert_array_equal(promise.p90_s, alone.p90_s)
    np.testing.assert_array_equal(green.p_on_time, apart.green(trips, alone).p_on_time)
