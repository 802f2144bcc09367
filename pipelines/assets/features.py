"""Feature assets: the offline feature tables (Polars over the staged lake) and the Feast registry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
from feast import FeatureStore

from nearx.settings import Settings, load_settings
from pipelines.assets.staging import staging_key
from pipelines.resources import LakeResource
from pipelines.staging import staging_path

OFFLINE_KEY = dg.AssetKey(["features", "offline"])
ML_TABLES: tuple[str, ...] = (
    "merchants",
    "customers",
    "couriers",
    "orders",
    "deliveries",
    "payments",
    "refunds",
    "reviews",
    "search_sessions",
    "search_impressions",
)
"""Staged lake tables the feature transforms and training rows read."""


class FeatureStoreResource(dg.ConfigurableResource["FeatureStoreResource"]):
    """Where the Feast registry, online store and MLflow live (``home``), and the online backend
    (``online``: sqlite, redis or postgres; empty means Redis when ``redis_url`` is set, else SQLite)."""

    home: str
    redis_url: str = ""
    online: str = ""
    postgres_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> FeatureStoreResource:
        return cls(
            home=str(settings.home),
            redis_url=settings.redis_url or "",
            online=settings.feast_online or "",
            postgres_url=settings.feast_postgres_url or settings.database_url or "",
        )

    def settings(self) -> Settings:
        values = {
            "NEARX_HOME": self.home,
            "NEARX_REDIS_URL": self.redis_url,
            "NEARX_FEAST_ONLINE": self.online,
            "NEARX_FEAST_POSTGRES_URL": self.postgres_url,
        }
        return load_settings({name: value for name, value in values.items() if value})

    def features_dir(self, lake: Path) -> Path:
        return lake / "features"

    def store(self, lake: Path) -> FeatureStore:
        from features.store import open_store

        return open_store(self.settings(), self.features_dir(lake))


def lake_tables(lake: Path) -> dict[str, pl.LazyFrame]:
    return {table: pl.scan_parquet(staging_path(lake, table)) for table in ML_TABLES}


@dg.asset(
    key=OFFLINE_KEY,
    deps=[staging_key(table) for table in ML_TABLES],
    kinds={"feast", "polars", "parquet"},
    group_name="features",
    description="Trailing-window feature tables (one per Feast view) and the applied Feast registry.",
)
def offline_features(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    from features.build import write_feature_tables
    from features.store import apply_repo

    rows = write_feature_tables(lake_tables(lake.path), feature_store.features_dir(lake.path))
    store = feature_store.store(lake.path)
    apply_repo(store)
    return dg.MaterializeResult(
        metadata={
            **{f"rows_{view}": count for view, count in rows.items()},
            "feature_services": ", ".join(sorted(s.name for s in store.list_feature_services())),
            "path": dg.MetadataValue.path(str(feature_store.features_dir(lake.path))),
        }
    )
