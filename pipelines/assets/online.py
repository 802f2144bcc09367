"""Online features: load the newest snapshot of every key into the Feast online store."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import polars as pl

from pipelines.assets.features import OFFLINE_KEY, FeatureStoreResource
from pipelines.resources import LakeResource

ONLINE_KEY = dg.AssetKey(["features", "online"])


@dg.asset(
    key=ONLINE_KEY,
    deps=[OFFLINE_KEY],
    kinds={"feast", "sqlite", "redis", "postgres"},
    group_name="online",
    description="Feast online store: NEARX_FEAST_ONLINE (sqlite, redis or postgres); unset, SQLite under "
    "home, or Redis when NEARX_REDIS_URL is set.",
)
def online_features(lake: LakeResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult[None]:
    from features.build import feature_table_path
    from features.store import materialize
    from features.views import BATCH_VIEWS

    store = feature_store.store(lake.path)
    stamps = pl.concat(
        pl.scan_parquet(feature_table_path(feature_store.features_dir(lake.path), view.name))
        .select("event_timestamp")
        .collect()
        for view in BATCH_VIEWS
    )["event_timestamp"]
    start, end = stamps.min(), stamps.max()
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValueError("the offline feature tables are empty: nothing to materialise")
    materialize(store, start=start - timedelta(seconds=1), end=end + timedelta(seconds=1))
    return dg.MaterializeResult(
        metadata={
            "online_store": store.config.online_store.type,
            "from": str(start),
            "to": str(end),
            "views": ", ".join(view.name for view in BATCH_VIEWS),
        }
    )
