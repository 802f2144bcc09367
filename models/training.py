"""Train, evaluate and register each model from the lake and the feature store (what the assets call).

Each ``train_*`` function: rows from the lake (``models.datasets``), history from the
model's FeatureService through point-in-time retrieval, a time-ordered split, the model
and its baselines, then one MLflow run with the champion/challenger gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from feast import FeatureStore
from sklearn.metrics import average_precision_score, brier_score_loss

from features.store import historical
from features.transforms.tables import LOW_EMISSION_MODES
from models import datasets, eta, fraud, green, ranker
from models.frames import TimeSplit, time_split
from models.tracking import Gate, Registered, log_training
from nearx.settings import Settings

ETA_SERVICE = "eta_v1"
ETA_MODEL = "nearx-eta"
ETA_ROW_FEATURES = ["distance_m", "mode", "category", "local_hour", "weekday", "rain"]


@dataclass(frozen=True)
class Trained:
    registered: Registered
    metrics: dict[str, float]


def service_features(store: FeatureStore, service: str) -> list[str]:
    """The feature names a FeatureService delivers (the one list training and serving share)."""
    fs = store.get_feature_service(service)
    return [feature.name for projection in fs.feature_view_projections for feature in projection.features]


def _data_version(rows: pl.DataFrame, time_column: str) -> str:
    return f"rows={rows.height};from={rows[time_column].min()!s};to={rows[time_column].max()!s}"


def train_eta_model(settings: Settings, store: FeatureStore, tables: Mapping[str, pl.LazyFrame]) -> Trained:
    rows = historical(store, ETA_SERVICE, datasets.eta_rows(tables))
    features = [*ETA_ROW_FEATURES, *service_features(store, ETA_SERVICE)]
    split = time_split(rows, "event_timestamp")
    result = eta.train_eta(split, features)
    holdout = split.test.select(features).to_pandas()
    y = split.test[eta.TARGET].to_numpy()
    registered = log_training(
        settings,
        name=ETA_MODEL,
        model=result.model,
        holdout_input=holdout,
        gate=Gate(
            "mae_s", higher_is_better=False, score=lambda p: float(np.mean(np.abs(p["eta_p50_s"] - y)))
        ),
        params={**eta.PARAMS, "features": ",".join(features), "target": eta.TARGET},
        metrics=result.metrics,
        tags={"feature_service": ETA_SERVICE, "data_version": _data_version(rows, "event_timestamp")},
        figures={
            "feature_importance.png": eta.importance_figure(result.model),
            "residuals_by_distance.png": eta.residuals_by_distance_figure(result.test),
            "calibration.png": eta.calibration_figure(result.test),
        },
    )
    return Trained(registered, result.metrics)


FRAUD_SERVICE = "fraud_v1"
FRAUD_MODEL = "nearx-fraud"
FRAUD_ROW_FEATURES = [
    "total_minor",
    "discount_minor",
    "item_count",
    "new_device",
    "phone_changed_recently",
    "device_orders_1h",
    "dropoff_from_home_m",
    "promo_code",
    "payment_method",
    "category",
]


def train_fraud_model(settings: Settings, store: FeatureStore, tables: Mapping[str, pl.LazyFrame]) -> Trained:
    rows = historical(store, FRAUD_SERVICE, datasets.fraud_rows(tables))
    features = [*FRAUD_ROW_FEATURES, *service_features(store, FRAUD_SERVICE)]
    split = time_split(rows, "event_timestamp", calibration=0.2, test=0.2)
    result = fraud.train_fraud(split, features)
    y = split.test[fraud.LABEL].to_numpy()
    registered = log_training(
        settings,
        name=FRAUD_MODEL,
        model=result.model,
        holdout_input=split.test.select(features).to_pandas(),
        gate=Gate(
            "pr_auc",
            higher_is_better=True,
            score=lambda p: float(average_precision_score(y, p["fraud_probability"])),
        ),
        params={**fraud.PARAMS, "features": ",".join(features)},
        metrics=result.metrics,
        tags={"feature_service": FRAUD_SERVICE, "data_version": _data_version(rows, "event_timestamp")},
        figures={
            "feature_importance.png": fraud.importance_figure(result.model),
            "pr_curve.png": fraud.pr_curve_figure(result.test),
            "calibration.png": fraud.calibration_figure(result.test),
        },
    )
    return Trained(registered, result.metrics)


RANKER_SERVICE = "ranker_v1"
RANKER_MODEL = "nearx-ranker"


def session_split(rows: pl.DataFrame) -> TimeSplit:
    """A time split of whole sessions (a session never straddles train and test)."""
    sessions = rows.group_by(ranker.GROUP).agg(pl.col("event_timestamp").min())
    parts = time_split(sessions, "event_timestamp")
    return TimeSplit(
        *(
            rows.join(part.select(ranker.GROUP), on=ranker.GROUP, how="semi")
            for part in (parts.train, parts.calibration, parts.test)
        )
    )


def train_ranker_model(
    settings: Settings, store: FeatureStore, tables: Mapping[str, pl.LazyFrame]
) -> Trained:
    rows = historical(store, RANKER_SERVICE, datasets.ranker_rows(tables))
    features = [*ranker.ROW_FEATURES, *service_features(store, RANKER_SERVICE)]
    split = session_split(rows)
    result = ranker.train_ranker(split, features)
    test = split.test
    registered = log_training(
        settings,
        name=RANKER_MODEL,
        model=result.model,
        holdout_input=test.select(features).to_pandas(),
        gate=Gate(
            "ndcg_at_10",
            higher_is_better=True,
            score=lambda p: ranker.session_metrics(test.with_columns(score=p["score"].to_numpy()), "score")[
                "ndcg_at_10"
            ],
        ),
        params={**ranker.PARAMS, "features": ",".join(features)},
        metrics=result.metrics,
        tags={"feature_service": RANKER_SERVICE, "data_version": _data_version(rows, "event_timestamp")},
        figures={"feature_importance.png": ranker.importance_figure(result.model)},
    )
    return Trained(registered, result.metrics)


GREEN_SERVICE = "green_v1"
GREEN_MODEL = "nearx-green"
GREEN_ROW_FEATURES = ["distance_m", "mode", "category", "local_hour", "weekday", "rain", "promised_s"]


def train_green_model(
    settings: Settings,
    store: FeatureStore,
    tables: Mapping[str, pl.LazyFrame],
    eta_model: eta.EtaModel | None = None,
) -> Trained:
    base = datasets.green_rows(tables)
    rows = historical(store, GREEN_SERVICE, base)
    features = [*GREEN_ROW_FEATURES, *service_features(store, GREEN_SERVICE)]
    split = time_split(rows, "event_timestamp")
    eta_inputs = None
    if eta_model is not None:
        eta_inputs = historical(
            store, ETA_SERVICE, base.join(split.test.select("order_id"), on="order_id", how="semi")
        )
    result = green.train_green(split, features, eta_model, eta_inputs)
    test = split.test.filter(pl.col("mode").is_in(LOW_EMISSION_MODES))
    y = test[green.LABEL].cast(pl.Int64).to_numpy()
    registered = log_training(
        settings,
        name=GREEN_MODEL,
        model=result.model,
        holdout_input=test.select(features).to_pandas(),
        gate=Gate(
            "brier", higher_is_better=False, score=lambda p: float(brier_score_loss(y, p["p_on_time"]))
        ),
        params={**green.PARAMS, "features": ",".join(features), "green_mode": green.GREEN_MODE},
        metrics=result.metrics,
        tags={"feature_service": GREEN_SERVICE, "data_version": _data_version(rows, "event_timestamp")},
        figures={},
    )
    return Trained(registered, result.metrics)
