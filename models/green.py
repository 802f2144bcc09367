"""Sustainability: will a low-emission courier (foot, bicycle, e-bike) meet the promised ETA?

A LightGBM classifier on delivered orders by low-emission modes, with the mode as a
feature, predicts P(on time). The policy "send a green courier when P >= threshold" is
then replayed on the holdout's motorised deliveries: CO2e saved comes from
``nearx.emissions`` (the green mode's factor for the city's country vs the actual mode),
and the ETA given up is the ETA model's P50 for the green mode minus for the actual one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
from mlflow.pyfunc.model import PythonModel
from sklearn.metrics import brier_score_loss, roc_auc_score

from features.transforms.tables import LOW_EMISSION_MODES
from models.eta import EtaModel
from models.frames import FeatureMatrix, TimeSplit
from models.native_trees import TreeScorer
from nearx.emissions import default_factors
from nearx.routing import Mode

FloatArray = npt.NDArray[np.float64]
LABEL = "on_time"
GREEN_MODE = "e_bike"
"""The low-emission mode offered in the policy replay (the fastest of the three)."""
PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "verbose": -1,
    "n_jobs": 1,
}
POLICY_THRESHOLDS = (0.5, 0.7, 0.8, 0.9)


class GreenModel(PythonModel):
    """pyfunc: order features with a candidate low-emission ``mode``; ``p_on_time`` out.

    Serving calls :meth:`predict_columns`; the pandas ``predict`` is the same on a frame.
    """

    def __init__(self, matrix: FeatureMatrix, classifier: lgb.LGBMClassifier) -> None:
        self.matrix = matrix
        self.classifier = classifier
        self.trees = TreeScorer(classifier.booster_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "trees" not in state:  # registered before the forest had a scorer of its own
            self.trees = TreeScorer(self.classifier.booster_)

    def tree_scorers(self) -> Sequence[TreeScorer]:
        return (self.trees,)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame(self.predict_columns({name: model_input[name] for name in model_input.columns}))

    def predict_columns(self, columns: Mapping[str, Any]) -> dict[str, FloatArray]:
        """``p_on_time`` for rows given as one array (or Series) per input column. A binary
        booster's prediction is the positive class's probability (``predict_proba[:, 1]``)."""
        return {"p_on_time": self.trees.predict(self.matrix.to_numpy(columns))}


def country_of(currency: str) -> str:
    """ISO 4217 codes start with the ISO 3166 alpha-2 country (NPR -> NP, INR -> IN)."""
    return currency[:2]


def co2e_kg(distance_m: np.ndarray, modes: list[str], currencies: list[str]) -> np.ndarray:
    factors = default_factors()
    per_km = np.array(
        [
            factors.kg_per_km(Mode(mode), country_of(currency))
            for mode, currency in zip(modes, currencies, strict=True)
        ]
    )
    return np.asarray(distance_m / 1000.0 * per_km)


@dataclass(frozen=True)
class GreenResult:
    model: GreenModel
    metrics: dict[str, float]
    policy: pl.DataFrame
    """Per threshold: orders switched, CO2e saved (kg), mean ETA given up (s), on-time rate of switched."""


def train_green(
    split: TimeSplit,
    features: list[str],
    eta_model: EtaModel | None = None,
    eta_inputs: pl.DataFrame | None = None,
) -> GreenResult:
    """Fit on low-emission deliveries; evaluate AUC/Brier vs a distance baseline; replay the policy."""

    def green(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("mode").is_in(LOW_EMISSION_MODES))

    train, test = green(pl.concat([split.train, split.calibration])), green(split.test)
    matrix = FeatureMatrix.infer(train, features)
    classifier = lgb.LGBMClassifier(**PARAMS).fit(
        matrix.to_pandas(train), train[LABEL].cast(pl.Int64).to_numpy()
    )
    model = GreenModel(matrix, classifier)
    y = test[LABEL].cast(pl.Int64).to_numpy()
    p = model.predict(None, test.to_pandas())["p_on_time"].to_numpy()
    # Baseline: the training on-time rate of the same distance decile (what a rule of thumb knows).
    edges = np.quantile(train["distance_m"].to_numpy(), np.linspace(0, 1, 11)[1:-1])
    rate = (
        pd.Series(train[LABEL].cast(pl.Float64).to_numpy())
        .groupby(np.searchsorted(edges, train["distance_m"].to_numpy()))
        .mean()
    )
    baseline = (
        rate.reindex(np.searchsorted(edges, test["distance_m"].to_numpy())).fillna(float(y.mean())).to_numpy()
    )
    both = len(np.unique(y)) == 2
    metrics = {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "baseline_distance_auc": float(roc_auc_score(y, baseline)) if both else float("nan"),
        "baseline_distance_brier": float(brier_score_loss(y, baseline)),
        "rows_train": float(train.height),
        "rows_test": float(test.height),
    }
    policy = replay_policy(model, split.test, eta_model, eta_inputs)
    for row in policy.iter_rows(named=True):
        t = int(row["threshold"] * 100)
        metrics[f"policy_{t}_co2e_saved_kg"] = row["co2e_saved_kg"]
        metrics[f"policy_{t}_eta_given_up_s"] = row["eta_given_up_s"]
        metrics[f"policy_{t}_switched_share"] = row["switched_share"]
    return GreenResult(model, metrics, policy)


def replay_policy(
    model: GreenModel,
    test: pl.DataFrame,
    eta_model: EtaModel | None,
    eta_inputs: pl.DataFrame | None,
    thresholds: tuple[float, ...] = POLICY_THRESHOLDS,
) -> pl.DataFrame:
    """Offer :data:`GREEN_MODE` on motorised holdout orders where P(on time) >= threshold.

    ``eta_inputs`` (the ETA service's features for the same orders) lets the ETA model
    price the switch; without it the ETA given up is reported as 0.
    """
    motorised = test.filter(~pl.col("mode").is_in(LOW_EMISSION_MODES))
    if eta_inputs is not None:
        extra = [c for c in eta_inputs.columns if c not in motorised.columns]
        motorised = motorised.join(eta_inputs.select("order_id", *extra), on="order_id", how="left")
    # The green courier is someone else: the motorised courier's own history does not apply.
    courier_columns = [c for c in motorised.columns if c.startswith("courier_") and c != "courier_id"]
    as_green = motorised.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(c) for c in courier_columns if motorised.schema[c].is_numeric()
    ).with_columns(mode=pl.lit(GREEN_MODE))
    p = model.predict(None, as_green.to_pandas())["p_on_time"].to_numpy()
    distance = motorised["distance_m"].to_numpy()
    saved = co2e_kg(distance, motorised["mode"].to_list(), motorised["currency"].to_list()) - co2e_kg(
        distance, as_green["mode"].to_list(), as_green["currency"].to_list()
    )
    if eta_model is not None and eta_inputs is not None:
        given_up = (
            eta_model.predict(None, as_green.to_pandas())["eta_p50_s"].to_numpy()
            - eta_model.predict(None, motorised.to_pandas())["eta_p50_s"].to_numpy()
        )
    else:
        given_up = np.zeros(motorised.height)
    rows = []
    for threshold in thresholds:
        switched = p >= threshold
        rows.append(
            {
                "threshold": threshold,
                "switched_share": float(switched.mean()) if len(switched) else 0.0,
                "co2e_saved_kg": float(saved[switched].sum()),
                "co2e_saved_share": float(
                    saved[switched].sum()
                    / max(
                        1e-9,
                        co2e_kg(distance, motorised["mode"].to_list(), motorised["currency"].to_list()).sum(),
                    )
                ),
                "eta_given_up_s": float(given_up[switched].mean()) if switched.any() else 0.0,
            }
        )
    return pl.DataFrame(rows)
