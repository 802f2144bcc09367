"""Jobs: the units the CLI, schedule and sensor launch."""

from __future__ import annotations

import dagster as dg

simulate_entities_job = dg.define_asset_job(
    "simulate_entities",
    selection=dg.AssetSelection.assets(
        *[["lake", "raw", t] for t in ("merchants", "customers", "couriers", "providers")]
    ),
)
simulate_day_job = dg.define_asset_job(
    "simulate_day",
    selection=dg.AssetSelection.groups("simulation")
    - dg.AssetSelection.assets(
        *[["lake", "raw", t] for t in ("merchants", "customers", "couriers", "providers")]
    ),
)
extract_job = dg.define_asset_job("extract", selection=dg.AssetSelection.groups("extract"))
refresh_job = dg.define_asset_job(
    "refresh", selection=dg.AssetSelection.groups("extract", "staging", "marts")
)
ALL_JOBS = [simulate_entities_job, simulate_day_job, extract_job, refresh_job]
