"""The model loader against a real MLflow registry: start-up load, hot swap, last good kept."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest

from models import ranker
from models.native_trees import TreeCompiler
from models.tracking import Gate, log_training, tracking_uri
from nearx.settings import Settings, load_settings
from serving import metrics
from serving.registry import MlflowSource, ModelRegistry, ModelSpec
from tests.serving.conftest import RankerStore, TrainedCity
from tests.serving.trained import (
    RANKER_INPUTS,
    ranker_split,
    synthetic_sessions,
    wrapper_before_the_fast_path,
)

SPEC = ModelSpec("ranker-test", frozenset(RANKER_INPUTS))


def _client(store: RankerStore) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)


@pytest.fixture
def champion_v1(ranker_store: RankerStore) -> RankerStore:
    _client(ranker_store).set_registered_model_alias(ranker_store.name, "champion", ranker_store.versions[0])
    return ranker_store


def test_loads_the_champion_with_its_signature_and_provenance(champion_v1: RankerStore) -> None:
    registry = ModelRegistry(MlflowSource(champion_v1.uri), [SPEC])
    assert registry.get("ranker-test") is None
    registry.refresh()
    model = registry.get("ranker-test")
    assert model is not None
    assert (model.name, model.version) == ("ranker-test", champion_v1.versions[0])
    assert set(model.inputs) == set(RANKER_INPUTS)
    assert model.feature_service == "ranker_v1"
    frame = synthetic_sessions(5, sessions=10)[0].sample(frac=1.0, axis=1, random_state=1)  # any column order
    scores = model.predict(frame)
    assert list(scores.columns) == ["score"]
    assert len(scores) == len(frame)
    # the fast path gives what MLflow's own (schema-enforcing) predict gives
    expected = model.pyfunc.predict(frame.loc[:, list(model.inputs)])
    assert scores["score"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_alias_move_hot_swaps_and_in_flight_requests_keep_their_model(champion_v1: RankerStore) -> None:
    registry = ModelRegistry(MlflowSource(champion_v1.uri), [SPEC])
    registry.refresh()
    in_flight = registry.get("ranker-test")
    assert in_flight is not None
    swaps = metrics.MODEL_SWAPS.labels("ranker-test")._value.get()
    registry.refresh()  # alias unchanged: nothing reloaded
    assert registry.get("ranker-test") is in_flight
    assert metrics.MODEL_SWAPS.labels("ranker-test")._value.get() == swaps

    _client(champion_v1).set_registered_model_alias(champion_v1.name, "champion", champion_v1.versions[1])
    registry.refresh()
    swapped = registry.get("ranker-test")
    assert swapped is not None
    assert swapped.version == champion_v1.versions[1]
    assert metrics.MODEL_SWAPS.labels("ranker-test")._value.get() == swaps + 1
    frame = synthetic_sessions(6, sessions=5)[0]
    # the request that started on v1 still scores with v1, and differently from v2
    old, new = in_flight.predict(frame)["score"], swapped.predict(frame)["score"]
    assert in_flight.version == champion_v1.versions[0]
    assert not old.equals(new)


def test_a_version_whose_signature_the_scorer_cannot_feed_is_refused(champion_v1: RankerStore) -> None:
    registry = ModelRegistry(MlflowSource(champion_v1.uri), [SPEC])
    registry.refresh()
    _client(champion_v1).set_registered_model_alias(champion_v1.name, "champion", champion_v1.versions[2])
    registry.refresh()
    model = registry.get("ranker-test")
    assert model is not None
    assert model.version == champion_v1.versions[0]
    assert "shoe_size" in (registry.status["ranker-test"].last_error or "")


def test_registry_down_keeps_the_last_good_model(champion_v1: RankerStore) -> None:
    registry = ModelRegistry(MlflowSource(champion_v1.uri), [SPEC])
    registry.refresh()
    errors = metrics.REGISTRY_ERRORS.labels("ranker-test")._value.get()
    database = champion_v1.root / "mlflow.db"
    moved = champion_v1.root / "mlflow.db.away"
    database.rename(moved)
    try:
        registry.refresh()
    finally:
        moved.rename(database)
    model = registry.get("ranker-test")
    assert model is not None
    assert model.version == champion_v1.versions[0]
    assert "no model registry" in (registry.status["ranker-test"].last_error or "")
    assert metrics.REGISTRY_ERRORS.labels("ranker-test")._value.get() == errors + 1


def test_a_new_champion_whose_artifacts_are_gone_keeps_the_last_good_model(champion_v1: RankerStore) -> None:
    registry = ModelRegistry(MlflowSource(champion_v1.uri), [SPEC])
    registry.refresh()
    client = _client(champion_v1)
    run_id = client.get_model_version(champion_v1.name, champion_v1.versions[1]).run_id
    copy = champion_v1.root / "saved-artifacts"
    experiment = client.get_run(run_id).info.experiment_id
    artifacts = champion_v1.root / "artifacts"
    shutil.copytree(artifacts, copy)
    shutil.rmtree(artifacts)
    client.set_registered_model_alias(champion_v1.name, "champion", champion_v1.versions[1])
    try:
        registry.refresh()
    finally:
        shutil.copytree(copy, artifacts)
        shutil.rmtree(copy)
    model = registry.get("ranker-test")
    assert model is not None
    assert model.version == champion_v1.versions[0]
    assert registry.status["ranker-test"].last_error
    assert experiment


def test_no_registry_at_all_means_no_model_and_a_stated_reason(tmp_path: object) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/none/mlflow.db"), [SPEC])
    registry.refresh()
    assert registry.get("ranker-test") is None
    assert "no model registry" in (registry.status["ranker-test"].last_error or "")


def test_loading_writes_nothing_to_the_working_directory(trained_city: TrainedCity, tmp_path: Path) -> None:
    """A fresh process (nothing configured globally) loads a pyfunc champion from its store only."""
    script = (
        "from serving.registry import MlflowSource\n"
        f"source = MlflowSource({trained_city.uri!r})\n"
        "source.load(source.resolve('nearx-fraud', 'champion'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # set_tracking_uri exports it
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={**env, "PYTHONPATH": str(root)}, check=False
    )
    assert done.returncode == 0
    assert list(tmp_path.iterdir()) == []  # no ./mlflow.db from MLflow's default tracking store


RANKER_PYFUNC_FEATURES = [
    *ranker.ROW_FEATURES,
    "customer_eco_share",
    "customer_price_level_mean",
    "merchant_category",
]
RANKER_PYFUNC_SPEC = ModelSpec("ranker-pyfunc", frozenset(RANKER_PYFUNC_FEATURES), ("score",))


@dataclass(frozen=True)
class LoggedRanker:
    settings: Settings
    trained: ranker.RankerResult


@pytest.fixture(scope="module")
def logged_ranker(tmp_path_factory: pytest.TempPathFactory) -> LoggedRanker:
    """``models.ranker.RankerModel`` logged and registered as the pipelines do it."""
    features = RANKER_PYFUNC_FEATURES
    trained = ranker.train_ranker(ranker_split(), features)
    settings = load_settings({"NEARX_HOME": str(tmp_path_factory.mktemp("ranker-pyfunc") / "home")})
    log_training(
        settings,
        name="ranker-pyfunc",
        model=trained.model,
        holdout_input=trained.test.select(features).to_pandas(),
        gate=Gate("ndcg_at_10", higher_is_better=True, score=lambda p: float(len(p))),
        params={},
        metrics={},
        tags={},
        figures={},
    )
    return LoggedRanker(settings, trained)


def test_a_registered_ranker_pyfunc_scores_columns_like_its_old_wrapper(logged_ranker: LoggedRanker) -> None:
    """The served fast path (column arrays, no pandas) gives the scores of the pandas → Polars →
    pandas wrapper it replaced."""
    trained = logged_ranker.trained
    registry = ModelRegistry(MlflowSource(tracking_uri(logged_ranker.settings)), [RANKER_PYFUNC_SPEC])
    registry.refresh()
    model = registry.get("ranker-pyfunc")
    assert model is not None, registry.status["ranker-pyfunc"].last_error
    assert set(model.inputs) == set(RANKER_PYFUNC_FEATURES)
    model_input = trained.test.select(RANKER_PYFUNC_FEATURES).to_pandas()
    columns = {name: model_input[name].to_numpy() for name in model.inputs}
    expected = wrapper_before_the_fast_path(trained.model, model_input)
    np.testing.assert_allclose(model.predict(columns)["score"], expected, rtol=1e-12)
    np.testing.assert_allclose(model.pyfunc.predict(model_input)["score"], expected, rtol=1e-12)


def test_a_compiler_serves_the_ranker_from_native_code_and_a_restart_reuses_it(
    logged_ranker: LoggedRanker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ranker's forest compiled at load (waited for here), with the scores of its booster on
    the holdout rows (missing values, a categorical); a second registry (a restart) loads the
    cached code instead of compiling."""
    trained = logged_ranker.trained
    model_input = trained.test.select(RANKER_PYFUNC_FEATURES).to_pandas()
    expected = wrapper_before_the_fast_path(trained.model, model_input)
    caplog.set_level(logging.INFO, logger="serving.registry")
    for outcome in ("compiled", "cached"):  # the first start, then a restart
        caplog.clear()
        compiler = TreeCompiler(tmp_path / "compiled", background=False)
        registry = ModelRegistry(
            MlflowSource(tracking_uri(logged_ranker.settings)), [RANKER_PYFUNC_SPEC], compiler=compiler
        )
        registry.refresh()
        model = registry.get("ranker-pyfunc")
        assert model is not None, registry.status["ranker-pyfunc"].last_error
        assert [scorer.native for scorer in model.trees] == [True]
        columns = {name: model_input[name].to_numpy() for name in model.inputs}
        np.testing.assert_allclose(model.predict_columns(columns)["score"], expected, rtol=1e-9)
        assert f"native trees {outcome}" in caplog.text
        assert len(list((tmp_path / "compiled").glob("*.o"))) == 1
        registry.close()
