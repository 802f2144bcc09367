"""Native LightGBM forests: the booster's answers, compiled once and cached, the booster when not."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.frames import FeatureMatrix
from models.native_trees import TreeCompiler, TreeScorer, cache_key, probe_rows
from models.ranker import RankerModel


def _rows(seed: int, n: int) -> pd.DataFrame:
    """Numbers with missing values and a categorical column (LightGBM's own category splits)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 5)) * [1.0, 10.0, 100.0, 0.1, 1.0], columns=list("abcde"))
    frame = frame.mask(rng.random(frame.shape) < 0.15)
    frame["kind"] = pd.Categorical(rng.choice(["x", "y", "z", "w"], n), categories=["x", "y", "z", "w"])
    return frame


def _target(frame: pd.DataFrame) -> np.ndarray:
    kind = frame["kind"].cat.codes.to_numpy()
    return np.nan_to_num(frame["a"].to_numpy()) + 0.05 * np.nan_to_num(frame["b"].to_numpy()) + (kind == 2)


def _train(objective: str, seed: int = 1) -> lgb.LGBMModel:
    frame = _rows(seed, 2_000)
    target = _target(frame)
    params = {"n_estimators": 30, "num_leaves": 15, "verbose": -1, "n_jobs": 1}
    if objective == "binary":
        return lgb.LGBMClassifier(**params).fit(frame, target > 0.5)
    if objective == "quantile":
        return lgb.LGBMRegressor(objective="quantile", alpha=0.9, **params).fit(frame, target)
    relevance = np.digitize(target, [0.0, 1.0])
    return lgb.LGBMRanker(**params).fit(frame, relevance, group=[20] * 100)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    numbers = frame[list("abcde")].to_numpy(dtype=np.float64)
    codes = frame["kind"].cat.codes.to_numpy().astype(np.float64)
    return np.column_stack([numbers, np.where(codes < 0, np.nan, codes)])


@pytest.fixture(scope="module")
def ranker() -> lgb.LGBMModel:
    return _train("lambdarank")


@pytest.fixture(scope="module")
def ranker_booster(ranker: lgb.LGBMModel) -> lgb.Booster:
    return ranker.booster_


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory, ranker_booster: lgb.Booster) -> Path:
    """A cache holding the ranker's native code, compiled once for the module."""
    cache = tmp_path_factory.mktemp("compiled")
    assert TreeCompiler(cache, background=False).accelerate(TreeScorer(ranker_booster)) == "compiled"
    return cache


@pytest.mark.parametrize("objective", ["binary", "quantile"])
def test_a_compiled_forest_answers_what_its_booster_answers(objective: str, tmp_path: Path) -> None:
    booster = _train(objective).booster_
    scorer = TreeScorer(booster)
    assert TreeCompiler(tmp_path, background=False).accelerate(scorer) == "compiled"
    assert scorer.native
    rows = _matrix(_rows(2, 500))
    rows[:5] = np.nan  # a candidate nothing is known about
    np.testing.assert_allclose(scorer.predict(rows), booster.predict(rows, num_threads=1), rtol=1e-12)


def test_the_ranker_forest_from_the_cache_answers_like_the_booster(
    compiled: Path, ranker_booster: lgb.Booster
) -> None:
    scorer = TreeScorer(ranker_booster)
    assert TreeCompiler(compiled).accelerate(scorer) == "cached"  # a restart: no compile, no child
    rows = _matrix(_rows(3, 300))
    np.testing.assert_allclose(scorer.predict(rows), ranker_booster.predict(rows, num_threads=1), rtol=1e-12)
    probes = probe_rows(ranker_booster.model_to_string(), ranker_booster.num_feature())
    np.testing.assert_allclose(scorer.predict(probes), ranker_booster.predict(probes), rtol=1e-12)


def test_a_background_compile_serves_the_booster_until_it_swaps_in(
    tmp_path: Path, ranker_booster: lgb.Booster
) -> None:
    scorer = TreeScorer(ranker_booster)
    compiler = TreeCompiler(tmp_path)
    assert compiler.accelerate(scorer) == "compiling"
    rows = _matrix(_rows(4, 50))
    expected = ranker_booster.predict(rows, num_threads=1)
    np.testing.assert_allclose(scorer.predict(rows), expected, rtol=1e-12)  # whichever serves now
    compiler.wait(120)
    assert scorer.native
    np.testing.assert_allclose(scorer.predict(rows), expected, rtol=1e-12)


def test_a_compile_that_fails_leaves_the_booster_serving(tmp_path: Path, ranker_booster: lgb.Booster) -> None:
    scorer = TreeScorer(ranker_booster)
    assert TreeCompiler(tmp_path, background=False, timeout_s=0.01).accelerate(scorer) == "failed"
    closed = TreeCompiler(tmp_path)
    closed.close()
    assert closed.accelerate(scorer) == "failed"  # a server shutting down starts no compile
    assert not scorer.native
    rows = _matrix(_rows(5, 50))
    np.testing.assert_array_equal(scorer.predict(rows), ranker_booster.predict(rows, num_threads=1))
    assert not list(tmp_path.glob("*.o"))


def test_an_unwritable_cache_leaves_the_booster_serving(tmp_path: Path, ranker_booster: lgb.Booster) -> None:
    (tmp_path / "file").write_text("")
    scorer = TreeScorer(ranker_booster)
    assert TreeCompiler(tmp_path / "file" / "compiled", background=False).accelerate(scorer) == "failed"
    assert not scorer.native


def test_cached_code_that_disagrees_with_its_booster_is_refused_and_removed(
    compiled: Path, ranker_booster: lgb.Booster, tmp_path: Path
) -> None:
    other = _train("lambdarank", seed=2).booster_
    (code,) = compiled.glob("*.o")
    planted = tmp_path / f"{cache_key(other.model_to_string())}.o"
    shutil.copy(code, planted)  # another model's code under this model's key
    scorer = TreeScorer(other)
    assert TreeCompiler(tmp_path).accelerate(scorer) == "failed"
    assert not scorer.native
    assert not planted.exists()


def test_a_pickled_ranker_model_leaves_its_native_code_behind(compiled: Path, ranker: lgb.LGBMModel) -> None:
    """MLflow pickles the pyfunc: the compiled code (process memory) must not travel with it."""
    model = RankerModel(FeatureMatrix(list("abcdef")), ranker)
    assert TreeCompiler(compiled).accelerate(model.trees) == "cached"
    restored = pickle.loads(pickle.dumps(model))
    assert model.tree_scorers()[0].native
    assert not restored.tree_scorers()[0].native
    assert restored.trees.booster is restored.ranker.booster_  # one booster, pickled once
    rows = _matrix(_rows(6, 20))
    np.testing.assert_allclose(restored.trees.predict(rows), model.trees.predict(rows), rtol=1e-12)


def test_a_ranker_model_pickled_before_its_trees_scorer_gets_one(ranker: lgb.LGBMModel) -> None:
    """Versions registered before this module hold no scorer: unpickling gives them one."""
    model = RankerModel(FeatureMatrix(list("abcdef")), ranker)
    del model.trees
    restored = pickle.loads(pickle.dumps(model))
    assert restored.tree_scorers()[0].booster is restored.ranker.booster_
