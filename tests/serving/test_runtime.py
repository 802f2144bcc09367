"""The scoring runtime's warm-up: champions and online features are exercised before requests see them.

The store is the project's real Feast repo, wrapped to record which views were read and to hold
the first read until the test lets it go, so a request can be sent while the warm-up is running.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from feast import FeatureStore

from nearx.routing import HaversineRouting
from nearx.settings import load_settings
from serving import metrics
from serving.budget import ScoringLane
from serving.eta import ETA_MODEL, GREEN_MODEL
from serving.fraud import FRAUD_MODEL
from serving.match import RANKER_MODEL, Candidates, Customer
from serving.online import NotCached, OnlineFeatures
from serving.registry import MlflowSource, ModelRegistry, warm_up
from serving.runtime import (
    DEFAULT_FRESHNESS_S,
    SCORER_SERVICES,
    WARM_UP_CITY,
    ScoringRuntime,
    build_runtime,
    default_specs,
)
from tests.serving.conftest import TrainedCity
from tests.serving.trained import register, train_ranker


class GatedStore:
    """The real store, except that online reads record their view and wait for ``release``."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self.read_views: list[str] = []
        self.reading = threading.Event()
        self.release = threading.Event()

    def get_online_features(self, *, features: list[str], entity_rows: list[dict[str, Any]]) -> Any:
        self.read_views.extend(dict.fromkeys(ref.split(":")[0] for ref in features))
        self.reading.set()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the store")
        return self._store.get_online_features(features=features, entity_rows=entity_rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture(scope="module")
def ranker_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("mlflow-runtime")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("r", artifact_location=(root / "a").as_uri())
    )
    register(uri, RANKER_MODEL, train_ranker(seed=5), tags={"feature_service": "ranker_v1"})
    return uri


def _candidates(n: int = 10) -> Candidates:
    return Candidates(
        merchant_ids=[f"m{i}" for i in range(n)],
        distance_m=np.linspace(300, 3000, n),
        price_level=np.full(n, 2.0),
        prep_estimate_s=np.full(n, 600.0),
        is_favourite=np.zeros(n),
        green_possible=np.ones(n),
    )


def _warm_ups(kind: str, name: str) -> float:
    value: float = metrics.WARM_UPS.labels(kind, name)._value.get()
    return value


async def test_requests_during_the_warm_up_get_the_fallback_and_every_served_view_is_read_first(
    ranker_uri: str, feature_store: FeatureStore
) -> None:
    registry = ModelRegistry(MlflowSource(ranker_uri), {RANKER_MODEL: default_specs()[RANKER_MODEL]})
    store = GatedStore(feature_store)
    runtime = ScoringRuntime(registry=registry, open_store=lambda: store, budget_s=60.0)
    model_warm_ups = _warm_ups("model", RANKER_MODEL)

    polling = asyncio.ensure_future(asyncio.to_thread(runtime.refresh))
    assert await asyncio.to_thread(store.reading.wait, 60), "the warm-up never read the store"
    # the champion is loaded (and was warmed before its swap); the features are still warming up
    assert registry.get(RANKER_MODEL) is not None
    assert _warm_ups("model", RANKER_MODEL) == model_warm_ups + 1
    assert not runtime.warmed
    assert runtime.online is None
    early = await runtime.rank(_candidates(), Customer("c1"))
    assert early.degraded == "features_unavailable"  # the scorer's own fallback, not a wait
    assert not polling.done()

    store.release.set()
    await polling
    assert runtime.warmed
    online = runtime.online
    assert online is not None
    served = {view.view for service in SCORER_SERVICES.values() for view in online.plan(service).views}
    assert served <= set(store.read_views)
    assert "merchant_stats" in served

    reads = len(store.read_views)
    ranking = await runtime.rank(_candidates(), Customer("c1"))
    assert (ranking.degraded, ranking.model) == (None, RANKER_MODEL)
    assert ranking.rating is not None
    assert not np.isnan(ranking.rating).any()
    assert len(store.read_views) > reads  # the request's own merchants, which the warm-up did not cache


async def test_a_second_poll_warms_nothing_again(ranker_uri: str, feature_store: FeatureStore) -> None:
    registry = ModelRegistry(MlflowSource(ranker_uri), {RANKER_MODEL: default_specs()[RANKER_MODEL]})
    store = GatedStore(feature_store)
    store.release.set()
    runtime = ScoringRuntime(registry=registry, open_store=lambda: store)
    await asyncio.to_thread(runtime.refresh)
    first = len(store.read_views)
    assert first > 0
    await asyncio.to_thread(runtime.refresh)
    assert len(store.read_views) == first


async def test_without_a_store_the_first_poll_still_ends_the_warm_up(tmp_path: Path) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/mlflow.db"), default_specs())
    runtime = ScoringRuntime(registry=registry, open_store=lambda: None)
    await asyncio.to_thread(runtime.refresh)
    assert runtime.warmed  # nothing to warm: the fallbacks are what this process serves
    assert runtime.online is None


def test_every_trained_champion_predicts_its_warm_up_row(trained_city: TrainedCity) -> None:
    for name in (ETA_MODEL, GREEN_MODEL, FRAUD_MODEL):
        model = trained_city.registry.get(name)
        assert model is not None, trained_city.registry.status[name]
        before = _warm_ups("model", name)
        warm_up(model)
        assert _warm_ups("model", name) == before + 1, f"{name} failed its warm-up prediction"


async def test_the_first_poll_builds_the_routing_provider_off_the_request_path(tmp_path: Path) -> None:
    built: list[tuple[str, str]] = []

    def routing(city_id: str, timezone: str) -> HaversineRouting:
        built.append((city_id, timezone))
        return HaversineRouting(city_id, timezone)

    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/mlflow.db"), default_specs())
    runtime = ScoringRuntime(registry=registry, open_store=lambda: None, routing=routing)
    await asyncio.to_thread(runtime.refresh)
    assert built == [(WARM_UP_CITY, "UTC")]  # a road graph would have been parsed in the poller
    await asyncio.to_thread(runtime.refresh)
    assert len(built) == 1
    runtime.eta_scorer("kathmandu", "Asia/Kathmandu", "NP")
    assert built[-1] == ("kathmandu", "Asia/Kathmandu")  # requests get their city's provider


def test_the_freshness_bound_comes_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings({"NEARX_HOME": str(tmp_path), "NEARX_FEATURE_FRESHNESS_S": "120"})
    assert build_runtime(settings).freshness_s == 120.0
    assert build_runtime(settings, freshness_s=5.0).freshness_s == 5.0
    assert build_runtime(load_settings({"NEARX_HOME": str(tmp_path)})).freshness_s == DEFAULT_FRESHNESS_S


async def test_what_the_warm_up_loaded_is_frozen_out_of_the_collector_until_the_runtime_stops(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/mlflow.db"), default_specs())
    runtime = ScoringRuntime(registry=registry, open_store=lambda: None)
    gc.unfreeze()
    await asyncio.to_thread(runtime.refresh)
    frozen = gc.get_freeze_count()
    assert frozen > 0
    await asyncio.to_thread(runtime.refresh)
    assert gc.get_freeze_count() <= frozen  # the first warm-up only (frozen objects may still be freed)
    await runtime.stop()
    assert gc.get_freeze_count() == 0


async def _warmed(runtime: ScoringRuntime, candidates: Candidates, customer: Customer) -> None:
    """Wait (not assert on time) until a cached-only ranking needs no read."""
    while True:
        try:
            runtime.match_scorer.rank(candidates, customer, cached_only=True)
            return
        except NotCached:
            await asyncio.sleep(0.05)


async def test_a_shed_request_still_warms_its_rows_so_the_next_one_is_answered_warm(
    ranker_uri: str, feature_store: FeatureStore
) -> None:
    registry = ModelRegistry(MlflowSource(ranker_uri), {RANKER_MODEL: default_specs()[RANKER_MODEL]})
    registry.refresh()
    runtime = ScoringRuntime(
        registry=registry,
        open_store=lambda: None,
        budget_s=60.0,
        lane=ScoringLane(1, 1),
        poll_interval_s=3600,
    )
    online = OnlineFeatures(feature_store, freshness_s=DEFAULT_FRESHNESS_S, refresh_ahead=True)
    runtime.online = online
    gate, started = threading.Event(), threading.Event()

    def hold_the_lane() -> str:
        started.set()
        gate.wait(60)
        return "released"

    runtime.start()
    busy = asyncio.create_task(runtime.within_budget(hold_the_lane, lambda reason: reason, "match"))
    try:
        assert await asyncio.to_thread(started.wait, 60)
        candidates, customer = _candidates(12), Customer("c-warm-behind")
        from_store = metrics.FEATURE_LOOKUPS.labels("merchant_stats", "store")._value.get()
        first = await runtime.rank(candidates, customer)
        assert first.degraded == "shed"  # it needed a read, and the only lane slot is taken
        await asyncio.wait_for(_warmed(runtime, candidates, customer), 60)
        assert metrics.FEATURE_LOOKUPS.labels("merchant_stats", "store")._value.get() >= from_store + 12
        second = await runtime.rank(candidates, customer)
        assert (second.degraded, second.model) == (None, RANKER_MODEL)  # warm: scored without the lane
        assert not busy.done()  # which is still held
    finally:
        gate.set()
        assert await busy == "released"
        await runtime.stop()


class _FlakyWarmer:
    """Stands in for the online features behind the warm-behind task: rows always wait to be
    warmed, and the first read fails with an error that is not ``FeaturesUnavailable``."""

    missed = 1

    def __init__(self) -> None:
        self.calls = 0
        self.retried = threading.Event()

    def warm_missed(self) -> int:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("an unexpected failure")
        self.retried.set()
        return 0


async def test_the_warm_behind_task_outlives_an_unexpected_failure(tmp_path: Path) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/mlflow.db"), default_specs())
    runtime = ScoringRuntime(registry=registry, open_store=lambda: None, poll_interval_s=0.05)
    warmer = _FlakyWarmer()
    runtime.online = warmer  # type: ignore[assignment]
    runtime.start()
    try:
        assert await asyncio.to_thread(warmer.retried.wait, 60)  # it tried again after the failure
    finally:
        await runtime.stop()
    assert warmer.calls >= 2
