"""ETA: LightGBM quantile models for P50 and P90 of checkout-to-door minutes, with a conformal P90.

Evaluated on the newest slice of time against two baselines computed in the same run:
the routing provider (``nearx.routing`` travel time for the courier's mode and hour plus
the training median of everything that isn't travel) and the mean duration by distance
decile. P90 is shifted by the conformal quantile of its residuals on a calibration slice
(between train and test), so the promise covers about 90% of deliveries.
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

from models.frames import FeatureMatrix, TimeSplit
from models.native_trees import TreeScorer
from nearx.routing import Mode, default_profile, elementwise_haversine_m

FloatArray = npt.NDArray[np.float64]
TARGET = "duration_s"
PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.9,
    "verbose": -1,
    "n_jobs": 1,  # OpenMP spin-waits make more threads much slower on a busy 2-core machine
}


class EtaModel(PythonModel):
    """pyfunc: features in, ``eta_p50_s`` and ``eta_p90_s`` (conformally calibrated) out.

    Serving calls :meth:`predict_columns` (a :class:`serving.registry.ColumnarModel`); the
    pandas ``predict`` (MLflow, training's evaluation) is the same computation on a frame.
    Both forests answer through their :class:`~models.native_trees.TreeScorer`, which serving
    may compile to native code (never pickled with the model).
    """

    def __init__(
        self, matrix: FeatureMatrix, p50: lgb.LGBMRegressor, p90: lgb.LGBMRegressor, p90_shift_s: float
    ):
        self.matrix = matrix
        self.p50 = p50
        self.p90 = p90
        self.p90_shift_s = p90_shift_s
        self.p50_trees = TreeScorer(p50.booster_)
        self.p90_trees = TreeScorer(p90.booster_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "p50_trees" not in state:  # registered before the forests had scorers of their own
            self.p50_trees = TreeScorer(self.p50.booster_)
            self.p90_trees = TreeScorer(self.p90.booster_)

    def tree_scorers(self) -> Sequence[TreeScorer]:
        return (self.p50_trees, self.p90_trees)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame(self.predict_columns({name: model_input[name] for name in model_input.columns}))

    def predict_columns(self, columns: Mapping[str, Any]) -> dict[str, FloatArray]:
        """``eta_p50_s`` (at least a minute) and ``eta_p90_s`` (at least P50) for rows given as
        one array (or Series) per input column: both boosters on one float matrix, no frame."""
        matrix = self.matrix.to_numpy(columns)
        p50 = np.maximum(self.p50_trees.predict(matrix), 60.0)
        p90 = np.maximum(self.p90_trees.predict(matrix) + self.p90_shift_s, p50)
        return {"eta_p50_s": p50, "eta_p90_s": p90}


@dataclass(frozen=True)
class EtaResult:
    model: EtaModel
    metrics: dict[str, float]
    test: pl.DataFrame
    """The holdout with ``eta_p50_s``, ``eta_p90_s`` and the baselines' predictions."""


def routing_baseline_s(frame: pl.DataFrame, handling_s: float) -> FloatArray:
    """The routing provider's travel time (haversine x circuity at the mode's hourly speed) + handling."""
    profile = default_profile()
    origins = frame.select("merchant_lat", "merchant_lng").to_numpy()
    destinations = frame.select("dropoff_lat", "dropoff_lng").to_numpy()
    circuity = np.array([profile.circuity_for(city) for city in frame["city"].to_list()])
    distance = elementwise_haversine_m(origins, destinations) * circuity
    speeds = {(mode, hour): profile.speed_mps(mode, hour) for mode in Mode for hour in range(24)}
    speed = np.array(
        [
            speeds[(Mode(m), int(h))]
            for m, h in zip(frame["mode"].to_list(), frame["local_hour"].to_list(), strict=True)
        ]
    )
    return np.asarray(distance / speed + handling_s, dtype=np.float64)


def routing_travel_s(frame: pl.DataFrame) -> FloatArray:
    return routing_baseline_s(frame, 0.0)


def distance_bins(train: pl.DataFrame, bins: int = 10) -> list[float]:
    return [float(q) for q in np.quantile(train["distance_m"].to_numpy(), np.linspace(0, 1, bins + 1)[1:-1])]


def mean_by_distance_s(train: pl.DataFrame, other: pl.DataFrame, target: str = TARGET) -> FloatArray:
    """The mean-by-distance baseline: each decile of training distance predicts its mean duration."""
    edges = distance_bins(train)
    train_bins = np.searchsorted(edges, train["distance_m"].to_numpy())
    means = pd.Series(train[target].to_numpy()).groupby(train_bins).mean()
    other_bins = np.searchsorted(edges, other["distance_m"].to_numpy())
    return np.asarray(
        means.reindex(other_bins).fillna(float(np.mean(train[target].to_numpy()))).to_numpy(),
        dtype=np.float64,
    )


def conformal_shift(residuals: FloatArray, coverage: float = 0.9) -> float:
    """The split-conformal quantile of ``y - q90`` so that ``q90 + shift`` covers ``coverage``."""
    if len(residuals) == 0:
        return 0.0
    level = min(1.0, np.ceil((len(residuals) + 1) * coverage) / len(residuals))
    return float(np.quantile(residuals, level))


def train_eta(split: TimeSplit, features: list[str], target: str = TARGET) -> EtaResult:
    """Fit P50/P90 on ``split.train``, calibrate P90 on ``split.calibration``, evaluate on ``split.test``."""
    matrix = FeatureMatrix.infer(split.train, features)
    x_train, y_train = matrix.to_pandas(split.train), split.train[target].to_numpy()
    p50 = lgb.LGBMRegressor(objective="quantile", alpha=0.5, **PARAMS).fit(x_train, y_train)
    p90 = lgb.LGBMRegressor(objective="quantile", alpha=0.9, **PARAMS).fit(x_train, y_train)
    calibration = split.calibration if split.calibration.height else split.train
    residual = calibration[target].to_numpy() - p90.predict(matrix.to_pandas(calibration))
    model = EtaModel(matrix, p50, p90, conformal_shift(residual))
    predicted = model.predict(None, split.test.to_pandas())
    y = split.test[target].to_numpy()
    metrics: dict[str, float] = {
        "mae_s": float(np.mean(np.abs(predicted["eta_p50_s"].to_numpy() - y))),
        "p90_coverage": float(np.mean(y <= predicted["eta_p90_s"].to_numpy())),
        "p90_shift_s": model.p90_shift_s,
        "rows_train": float(split.train.height),
        "rows_test": float(split.test.height),
    }
    baselines: dict[str, FloatArray] = {
        "mean_by_distance": mean_by_distance_s(split.train, split.test, target)
    }
    if {"merchant_lat", "dropoff_lat", "mode", "local_hour", "city"} <= set(split.test.columns):
        handling = float(np.median(split.train[target].to_numpy() - routing_travel_s(split.train)))
        baselines["routing"] = routing_baseline_s(split.test, handling)
    for name, values in baselines.items():
        metrics[f"baseline_{name}_mae_s"] = float(np.mean(np.abs(values - y)))
    if "baseline_routing_mae_s" in metrics:
        metrics["mae_vs_routing"] = metrics["mae_s"] / metrics["baseline_routing_mae_s"] - 1.0
    test = split.test.with_columns(
        eta_p50_s=predicted["eta_p50_s"].to_numpy(),
        eta_p90_s=predicted["eta_p90_s"].to_numpy(),
        **{f"baseline_{name}_s": values for name, values in baselines.items()},
    )
    return EtaResult(model, metrics, test)


def importance_figure(model: EtaModel) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    gains = model.p50.booster_.feature_importance(importance_type="gain")
    order = np.argsort(gains)
    ax.barh(np.array(model.matrix.columns)[order], gains[order])
    ax.set_title("ETA P50: feature importance (gain)")
    fig.tight_layout()
    return fig


def residuals_by_distance_figure(test: pl.DataFrame, target: str = TARGET) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(test["distance_m"], test[target] - test["eta_p50_s"], s=3, alpha=0.3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("distance (m)")
    ax.set_ylabel("actual - P50 (s)")
    ax.set_title("ETA residuals by distance")
    fig.tight_layout()
    return fig


def calibration_figure(test: pl.DataFrame, target: str = TARGET) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    deciles = pd.qcut(test["eta_p90_s"].to_numpy(), 10, labels=False, duplicates="drop")
    covered = pd.Series(test[target].to_numpy() <= test["eta_p90_s"].to_numpy()).groupby(deciles).mean()
    ax.plot(covered.index, covered.to_numpy(), marker="o")
    ax.axhline(0.9, color="k", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_xlabel("P90 decile")
    ax.set_ylabel("coverage")
    ax.set_title("ETA P90 coverage by predicted decile")
    fig.tight_layout()
    return fig
