"""The ML part of the graph in one place for ``definitions.py``: assets, job and resource."""

from __future__ import annotations

import dagster as dg

from nearx.settings import Settings
from pipelines.assets.features import FeatureStoreResource, offline_features
from pipelines.assets.online import online_features
from pipelines.assets.training import training_assets

ml_assets = [offline_features, *training_assets, online_features]
ml_job = dg.define_asset_job("ml", selection=dg.AssetSelection.groups("features", "training", "online"))


def ml_resources(settings: Settings) -> dict[str, FeatureStoreResource]:
    return {"feature_store": FeatureStoreResource.from_settings(settings)}
