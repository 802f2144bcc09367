"""Staging assets: validate each raw table (and its live part) against its contract and consolidate it,
keyed by platform ids where the demo seeded a simulated entity."""

import dagster as dg
import polars as pl

from pipelines.assets.extract import extract_key
from pipelines.assets.live import live_key
from pipelines.assets.simulation import raw_key
from pipelines.contracts import CONTRACTS
from pipelines.live import LIVE_TABLES
from pipelines.platform_ids import DEMO_ENTITIES
from pipelines.resources import LakeResource
from pipelines.staging import stage_table


def staging_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", "staging", table])


def _staging_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=staging_key(table),
        deps=[
            raw_key(table),
            *([live_key(table)] if table in LIVE_TABLES else []),
            extract_key(DEMO_ENTITIES.table),  # seeded entities are staged under their platform ids
        ],
        kinds={"parquet", "polars"},
        group_name="staging",
        description=f"All partitions of {table} (simulated and live), checked against the lake contract, "
        "as one Parquet file.",
    )
    def _stage(lake: LakeResource) -> dg.MaterializeResult[None]:
        staged = stage_table(lake.path, table)
        preview = pl.read_parquet(staged.path, n_rows=5)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": staged.rows,
                "partitions": staged.files,
                "path": dg.MetadataValue.path(str(staged.path)),
                "preview": dg.MetadataValue.md(str(preview)),
            }
        )

    return _stage


staging_assets = [_staging_asset(table) for table in CONTRACTS]
