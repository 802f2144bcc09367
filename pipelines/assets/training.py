"""Training assets: one per model; each trains, evaluates against its baselines, registers a version
in MLflow and runs the champion/challenger gate (``models.training`` does the work)."""

from __future__ import annotations

import dagster as dg

from pipelines.assets.features import OFFLINE_KEY, FeatureStoreResource, lake_tables
from pipelines.resources import LakeResource


def model_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["models", name])


def _result(trained: object) -> dg.MaterializeResult[None]:
    from models.training import Trained

    assert isinstance(trained, Trained)
    registered = trained.registered
    return dg.MaterializeResult(
        metadata={
            **{key: dg.MetadataValue.float(value) for key, value in trained.metrics.items()},
            "registered_model": registered.name,
            "version": registered.version,
            "promoted": registered.promoted,
            "decision": registered.decision,
            "mlflow_run_id": registered.run_id,
        }
    )


@dg.asset(key=model_key("eta"), deps=[OFFLINE_KEY], kinds={"lightgbm", "mlflow"}, group_name="training")
def eta_model(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    """ETA P50/P90 (``nearx-eta``) vs the routing provider and mean-by-distance baselines."""
    from models.training import train_eta_model

    return _result(
        train_eta_model(feature_store.settings(), feature_store.store(lake.path), lake_tables(lake.path))
    )


@dg.asset(key=model_key("fraud"), deps=[OFFLINE_KEY], kinds={"lightgbm", "mlflow"}, group_name="training")
def fraud_model(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    """Fraud probability, anomaly score, reasons and decision (``nearx-fraud``) vs rules."""
    from models.training import train_fraud_model

    return _result(
        train_fraud_model(feature_store.settings(), feature_store.store(lake.path), lake_tables(lake.path))
    )


@dg.asset(key=model_key("ranker"), deps=[OFFLINE_KEY], kinds={"lightgbm", "mlflow"}, group_name="training")
def ranker_model(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    """Matching LambdaRank (``nearx-ranker``) vs distance-only and rating-only orderings."""
    from models.training import train_ranker_model

    return _result(
        train_ranker_model(feature_store.settings(), feature_store.store(lake.path), lake_tables(lake.path))
    )


@dg.asset(
    key=model_key("green"),
    deps=[OFFLINE_KEY, model_key("eta")],
    kinds={"lightgbm", "mlflow"},
    group_name="training",
)
def green_model(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    """Low-emission on-time model (``nearx-green``); prices the ETA given up with the ETA champion."""
    import mlflow

    from models.tracking import CHAMPION, configure
    from models.training import ETA_MODEL, train_green_model

    settings = feature_store.settings()
    configure(settings)
    eta = mlflow.pyfunc.load_model(f"models:/{ETA_MODEL}@{CHAMPION}").unwrap_python_model()
    return _result(train_green_model(settings, feature_store.store(lake.path), lake_tables(lake.path), eta))


training_assets = [eta_model, fraud_model, ranker_model, green_model]
