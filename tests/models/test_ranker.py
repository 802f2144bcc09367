"""The ranker's numeric fast path gives the scores of the pandas → Polars → pandas wrapper it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from models import ranker
from tests.serving.trained import ranker_split, wrapper_before_the_fast_path

FEATURES = [*ranker.ROW_FEATURES, "customer_eco_share", "customer_price_level_mean", "merchant_category"]


@pytest.fixture(scope="module")
def trained() -> ranker.RankerResult:
    return ranker.train_ranker(ranker_split(), FEATURES)


def test_the_matrix_has_a_category_and_missing_values(trained: ranker.RankerResult) -> None:
    assert "merchant_category" in trained.model.matrix.categorical
    test = trained.test.select(FEATURES)
    assert test["customer_eco_share"].null_count() > 0
    assert test["merchant_category"].null_count() > 0


def test_pandas_predict_scores_like_the_old_wrapper(trained: ranker.RankerResult) -> None:
    model_input = trained.test.select(FEATURES).to_pandas()
    scores = trained.model.predict(None, model_input)
    assert list(scores.columns) == ["score"]
    np.testing.assert_allclose(
        scores["score"], wrapper_before_the_fast_path(trained.model, model_input), rtol=1e-12
    )


def test_column_arrays_score_like_the_old_wrapper(trained: ranker.RankerResult) -> None:
    model_input = trained.test.select(FEATURES).to_pandas()
    columns = {name: model_input[name].to_numpy() for name in FEATURES}
    columns["merchant_category"][:3] = "bakery"  # a category training never saw: missing, as in pandas
    model_input["merchant_category"] = columns["merchant_category"]
    scores = trained.model.predict_columns(columns)["score"]
    np.testing.assert_allclose(scores, wrapper_before_the_fast_path(trained.model, model_input), rtol=1e-12)


def test_training_personalisation_is_the_served_one(trained: ranker.RankerResult) -> None:
    frame = ranker.with_personalisation(trained.test)
    assert frame["eco_match"].null_count() == trained.test["eco_packaging"].null_count()
    no_history = trained.test["customer_price_level_mean"].is_null()
    assert (frame.filter(no_history)["price_gap"] == frame.filter(no_history)["price_level"] - 1.0).all()
