"""The match scorer: a real ranker from the registry, online features, personalisation, fallbacks."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from feast import FeatureStore

from serving import metrics
from serving.match import RANKER_MODEL, Candidates, Customer, MatchScorer, heuristic_scores
from serving.online import OnlineFeatures
from serving.registry import MlflowSource, ModelRegistry
from serving.runtime import default_specs, service_features
from tests.serving.conftest import open_feature_store
from tests.serving.trained import register, train_ranker


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("mlflow-match")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("m", artifact_location=(root / "a").as_uri())
    )
    register(uri, RANKER_MODEL, train_ranker(seed=4), tags={"feature_service": "ranker_v1"})
    registry = ModelRegistry(MlflowSource(uri), {RANKER_MODEL: default_specs()[RANKER_MODEL]})
    registry.refresh()
    assert registry.get(RANKER_MODEL) is not None, registry.status
    return registry


def _candidates(n: int = 40, favourite: int | None = None) -> Candidates:
    rng = np.random.default_rng(7)
    is_favourite = np.zeros(n)
    if favourite is not None:
        is_favourite[favourite] = 1.0
    return Candidates(
        merchant_ids=[f"m{i}" for i in range(n)],
        distance_m=np.sort(rng.uniform(200, 4000, n)),
        price_level=rng.integers(1, 5, n).astype(np.float64),
        prep_estimate_s=rng.uniform(300, 1800, n),
        is_favourite=is_favourite,
        green_possible=np.ones(n),
    )


def test_the_ranker_scores_every_candidate_and_names_itself(
    registry: ModelRegistry, feature_store: FeatureStore
) -> None:
    ranking = MatchScorer(registry, OnlineFeatures(feature_store)).rank(_candidates(), Customer("c1"))
    assert ranking.degraded is None
    assert (ranking.model, ranking.version) == (RANKER_MODEL, "1")
    assert sorted(ranking.order.tolist()) == list(range(40))
    assert np.all(np.diff(ranking.scores[ranking.order]) <= 0)
    assert ranking.rating is not None  # from the online store
    assert not np.isnan(ranking.rating).any()


def test_ranking_changes_with_personalisation(registry: ModelRegistry, feature_store: FeatureStore) -> None:
    scorer = MatchScorer(registry, OnlineFeatures(feature_store))
    plain = scorer.rank(_candidates(), Customer("c1"))
    last = int(plain.order[-1])
    personal = scorer.rank(_candidates(favourite=last), Customer("c1"))
    assert personal.degraded is None
    assert personal.order.tolist().index(last) < plain.order.tolist().index(last)
    assert personal.order.tolist() != plain.order.tolist()


def test_no_model_means_the_heuristic_marked_degraded(feature_store: FeatureStore, tmp_path: Path) -> None:
    empty = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/mlflow.db"), default_specs())
    empty.refresh()
    before = metrics.DEGRADED.labels("match", "no_model")._value.get()
    candidates = _candidates()
    ranking = MatchScorer(empty, OnlineFeatures(feature_store)).rank(candidates, Customer("c1"))
    assert (ranking.model, ranking.degraded) == (None, "no_model")
    expected = heuristic_scores(candidates, Customer("c1"), ranking.rating)
    assert ranking.order.tolist() == np.argsort(-expected, kind="stable").tolist()
    assert metrics.DEGRADED.labels("match", "no_model")._value.get() == before + 1


def test_online_store_down_means_the_heuristic_marked_degraded(
    registry: ModelRegistry, feature_store: FeatureStore, tmp_path: Path
) -> None:
    down = open_feature_store(tmp_path, online="redis", online_url="redis://127.0.0.1:1/0")
    down.apply(
        [
            *feature_store.list_entities(),
            *feature_store.list_feature_views(),
            *feature_store.list_feature_services(),
        ]
    )
    ranking = MatchScorer(registry, OnlineFeatures(down)).rank(_candidates(), Customer("c1"))
    assert (ranking.model, ranking.degraded) == (None, "features_unavailable")
    assert len(ranking.order) == 40


def test_heuristic_prefers_favourites_and_green_for_eco_customers() -> None:
    candidates = _candidates(favourite=39)
    scores = heuristic_scores(candidates, Customer("c1"), None)
    base = heuristic_scores(_candidates(), Customer("c1"), None)
    assert scores[39] - base[39] == pytest.approx(3.0)
    assert np.sum(scores > scores[39]) < np.sum(base > base[39])
    green = Candidates(**{**candidates.__dict__, "green_possible": np.eye(40)[20]})
    eco = heuristic_scores(green, Customer("c1", eco_first=True), None)
    plain = heuristic_scores(green, Customer("c1"), None)
    assert eco[20] - plain[20] == pytest.approx(1.0)


def test_the_served_feature_service_lists_match_the_specs() -> None:
    spec = default_specs()[RANKER_MODEL]()
    assert set(service_features("ranker_v1")) <= spec.supplied


def test_the_runtime_reads_the_registry_the_models_write(tmp_path: Path) -> None:
    from features.store import feast_dir, repo_config
    from models.tracking import tracking_uri as models_uri
    from nearx.settings import load_settings
    from serving.runtime import feast_registry_path, tracking_uri

    settings = load_settings({"NEARX_HOME": str(tmp_path)})
    assert tracking_uri(settings) == models_uri(settings)
    assert str(feast_registry_path(settings)) == repo_config(settings).registry.path
    assert feast_registry_path(settings).parent == feast_dir(settings)


def test_the_ranker_sees_price_quartiles_on_the_scale_it_learnt_on() -> None:
    from nearx.price_levels import PRICE_LEVEL_OF_QUARTILE, model_price_level
    from serving.match import _request_columns

    candidates = _candidates()
    columns = _request_columns(candidates, Customer("c1", price_sensitivity="low"), {})
    expected = [PRICE_LEVEL_OF_QUARTILE[int(q)] for q in candidates.price_level]
    np.testing.assert_array_equal(columns["price_level"], expected)
    assert set(columns["customer_price_level_mean"]) == {model_price_level(3.5)}  # the prior, no history
