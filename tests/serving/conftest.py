"""One MLflow store per test module with real LightGBM ranker versions registered in it, and one
small trained city per session (ETA, green and fraud champions with their online features)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from feast import FeatureStore

from features.build import feature_table_path
from features.store import apply_repo, materialize, open_store
from features.views import BATCH_VIEWS
from models.training import train_eta_model, train_fraud_model, train_green_model
from nearx.settings import load_settings
from pipelines.simulation.run import SimulationSpec
from serving.registry import MlflowSource, ModelRegistry
from serving.runtime import default_specs
from tests.serving.trained import RANKER_INPUTS, register, train_ranker
from tests.small_city import SmallCity, build_small_city


@dataclass(frozen=True)
class RankerStore:
    uri: str
    root: Path
    name: str
    versions: tuple[str, ...]


@pytest.fixture(scope="module")
def ranker_store(tmp_path_factory: pytest.TempPathFactory) -> RankerStore:
    """Two versions of a ranker (v1 champion) and v3 wanting an input no scorer supplies."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    v1 = register(uri, "ranker-test", train_ranker(seed=1), tags={"feature_service": "ranker_v1"})
    v2 = register(uri, "ranker-test", train_ranker(seed=2, n_estimators=20), promote=False)
    odd = train_ranker(seed=3, n_estimators=5)
    v3 = register(uri, "ranker-test", odd, inputs=[*RANKER_INPUTS[:-1], "shoe_size"], promote=False)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("ranker-test", "champion", v1)
    return RankerStore(uri, root, "ranker-test", (v1, v2, v3))


MERCHANT_FEATURES = (
    "merchant_orders_28d",
    "merchant_acceptance_rate",
    "merchant_cancel_rate",
    "merchant_prep_p50_s",
    "merchant_prep_p90_s",
    "merchant_on_time_rate",
    "merchant_rating_28d",
    "merchant_reviews_28d",
)


def merchant_feature_rows(ids: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    frame = pd.DataFrame({"merchant_id": ids, "event_timestamp": [pd.Timestamp.now(tz="UTC")] * n})
    for name in MERCHANT_FEATURES:
        frame[name] = rng.uniform(0, 1, n)
    frame["merchant_rating_28d"] = rng.uniform(3.0, 5.0, n)
    frame["merchant_orders_28d"] = rng.uniform(0, 500, n)
    return frame


def open_feature_store(root: Path, online: str = "sqlite", online_url: str | None = None) -> FeatureStore:
    settings = load_settings({"NEARX_HOME": str(root / "home")})
    return open_store(settings, root / "features", online=online, online_url=online_url)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def feature_store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """The project's Feast repo applied to a temp registry, with online rows for merchants m0..m299."""
    store = open_feature_store(tmp_path_factory.mktemp("feast"))
    apply_repo(store)
    store.write_to_online_store("merchant_stats", merchant_feature_rows([f"m{i}" for i in range(300)]))
    return store


@dataclass(frozen=True)
class TrainedCity:
    """A small simulated city with the ETA, green and fraud models trained by ``models.training``
    (the real pipeline functions), registered as champions, and its features materialised online."""

    city: SmallCity
    store: FeatureStore
    uri: str
    registry: ModelRegistry
    merchant_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]


CITY_SPEC = SimulationSpec(("kathmandu",), date(2026, 1, 1), days=10, orders_per_day=300, seed=7)


@pytest.fixture(scope="session")
def trained_city(tmp_path_factory: pytest.TempPathFactory) -> TrainedCity:
    city = build_small_city(Path(tmp_path_factory.mktemp("trained-city")), CITY_SPEC)
    store = open_store(city.settings, city.features_dir, online="sqlite")
    apply_repo(store)
    tables = {name: pl.scan_parquet(files) for name, files in city.raw_paths().items()}
    train_eta_model(city.settings, store, tables)
    train_green_model(city.settings, store, tables)
    train_fraud_model(city.settings, store, tables)
    stamps = pl.concat(
        pl.scan_parquet(feature_table_path(city.features_dir, view.name)).select("event_timestamp").collect()
        for view in BATCH_VIEWS
    )["event_timestamp"]
    start, end = stamps.min(), stamps.max()
    assert isinstance(start, datetime)
    assert isinstance(end, datetime)
    materialize(store, start=start - timedelta(seconds=1), end=end + timedelta(seconds=1))
    uri = f"sqlite:///{city.settings.home / 'mlflow' / 'mlflow.db'}"
    registry = ModelRegistry(MlflowSource(uri), default_specs())
    registry.refresh()
    orders = tables["orders"].select("merchant_id", "customer_id").collect()
    return TrainedCity(
        city,
        store,
        uri,
        registry,
        tuple(orders["merchant_id"].unique(maintain_order=True).to_list()),
        tuple(orders["customer_id"].unique(maintain_order=True).to_list()),
    )
