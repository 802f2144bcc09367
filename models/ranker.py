"""Matching ranker: LightGBM LambdaRank over search sessions, personalised by the customer's taste.

Relevance is 2 for the merchant ordered, 1 for one clicked, 0 for shown only. The
display position is not a feature (serving has none); personalisation comes from the
customer's history (eco share, usual price level) crossed with the merchant's traits,
and from favourites. Baselines, on the same holdout sessions: nearest first, best
rated first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
from mlflow.pyfunc.model import PythonModel

from models.frames import FeatureMatrix, FloatArray, TimeSplit, as_floats
from models.native_trees import TreeScorer

GROUP = "session_id"
LABEL = "relevance"
PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "verbose": -1,
    "n_jobs": 1,
}
ROW_FEATURES = [
    "distance_m",
    "price_level",
    "rating",
    "prep_estimate_s",
    "eco_packaging",
    "is_favourite",
    "hour",
    "rain",
]
PERSONALISATION = ["eco_match", "price_gap"]
"""Computed inside the model from its inputs, so serving sends raw features only."""


def personalisation(columns: Mapping[str, Any]) -> dict[str, FloatArray]:
    """Cross the customer's taste with the merchant: eco packaging x eco share, price vs usual price.

    A customer without history counts as eco share 0 and usual price level 1; a missing
    merchant trait leaves the crossed feature missing (NaN).
    """
    eco_share = as_floats(columns["customer_eco_share"])
    price_mean = as_floats(columns["customer_price_level_mean"])
    return {
        "eco_match": as_floats(columns["eco_packaging"]) * np.where(np.isnan(eco_share), 0.0, eco_share),
        "price_gap": as_floats(columns["price_level"]) - np.where(np.isnan(price_mean), 1.0, price_mean),
    }


def with_personalisation(frame: pl.DataFrame) -> pl.DataFrame:
    """The training frame with :func:`personalisation`'s columns (missing as null)."""
    columns = dict(zip(frame.columns, frame.get_columns(), strict=True))
    return frame.with_columns(
        pl.Series(name, values, nan_to_null=True) for name, values in personalisation(columns).items()
    )


class RankerModel(PythonModel):
    """pyfunc: one row per candidate (customer features repeated), ``score`` out (higher first).

    Serving calls :meth:`predict_columns` (column arrays in, the trees on a float matrix):
    for 200 candidates that is the trees' cost, where the pandas path pays ten times it.
    The trees answer through :attr:`trees`, which serving may compile to native code
    (:mod:`models.native_trees`); the compiled code is never pickled with the model.
    """

    def __init__(self, matrix: FeatureMatrix, ranker: lgb.LGBMRanker) -> None:
        self.matrix = matrix
        self.ranker = ranker
        self.trees = TreeScorer(ranker.booster_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "trees" not in state:  # registered before the trees had a scorer of their own
            self.trees = TreeScorer(self.ranker.booster_)

    def tree_scorers(self) -> Sequence[TreeScorer]:
        return (self.trees,)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame(self.predict_columns({name: model_input[name] for name in model_input.columns}))

    def predict_columns(self, columns: Mapping[str, Any]) -> dict[str, FloatArray]:
        """``{"score": ...}`` for rows given as one array (or Series) per input column."""
        matrix = self.matrix.to_numpy({**columns, **personalisation(columns)})
        return {"score": self.trees.predict(matrix)}


def session_metrics(frame: pl.DataFrame, score: str, k: int = 10) -> dict[str, float]:
    """Mean NDCG@k over sessions with any relevance, and MRR of the ordered merchant."""
    ranked = frame.select(GROUP, LABEL, score).with_columns(
        rank=pl.col(score).rank("ordinal", descending=True).over(GROUP)
    )
    gains = ranked.with_columns(
        dcg=pl.when(pl.col("rank") <= k)
        .then((2.0 ** pl.col(LABEL) - 1) / (pl.col("rank") + 1).log(2))
        .otherwise(0.0),
        ideal_rank=pl.col(LABEL).rank("ordinal", descending=True).over(GROUP),
    ).with_columns(
        idcg=pl.when(pl.col("ideal_rank") <= k)
        .then((2.0 ** pl.col(LABEL) - 1) / (pl.col("ideal_rank") + 1).log(2))
        .otherwise(0.0)
    )
    per_session = gains.group_by(GROUP).agg(
        pl.col("dcg").sum(),
        pl.col("idcg").sum(),
        rr=(1.0 / pl.col("rank").filter(pl.col(LABEL) == 2).min()),
    )
    ndcg = per_session.filter(pl.col("idcg") > 0).select((pl.col("dcg") / pl.col("idcg")).mean()).item()
    mrr = per_session.filter(pl.col("rr").is_not_null()).select(pl.col("rr").mean()).item()
    return {"ndcg_at_10": float(ndcg or 0.0), "mrr": float(mrr or 0.0)}


@dataclass(frozen=True)
class RankerResult:
    model: RankerModel
    metrics: dict[str, float]
    test: pl.DataFrame


def train_ranker(split: TimeSplit, features: list[str]) -> RankerResult:
    """Fit LambdaRank on train sessions (calibration sessions join them), evaluate on test sessions."""
    train = with_personalisation(pl.concat([split.train, split.calibration])).sort(
        "event_timestamp", GROUP, maintain_order=True
    )
    matrix = FeatureMatrix.infer(train, [*features, *PERSONALISATION])
    groups = train.group_by(GROUP, maintain_order=True).len()["len"].to_numpy()
    ranker = lgb.LGBMRanker(objective="lambdarank", **PARAMS).fit(
        matrix.to_pandas(train), train[LABEL].to_numpy(), group=groups
    )
    model = RankerModel(matrix, ranker)
    test = split.test.with_columns(
        score=model.predict(None, split.test.select(features).to_pandas())["score"].to_numpy(),
        distance_score=-pl.col("distance_m"),
        rating_score=pl.col("rating"),
    )
    metrics = session_metrics(test, "score")
    for name in ("distance", "rating"):
        for metric, value in session_metrics(test, f"{name}_score").items():
            metrics[f"baseline_{name}_{metric}"] = value
    metrics["sessions_test"] = float(test[GROUP].n_unique())
    metrics["rows_train"] = float(train.height)
    return RankerResult(model, metrics, test)


def importance_figure(model: RankerModel) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    gains = model.ranker.booster_.feature_importance(importance_type="gain")
    order = np.argsort(gains)
    ax.barh(np.array(model.matrix.columns)[order], gains[order])
    ax.set_title("Ranker: feature importance (gain)")
    fig.tight_layout()
    return fig
