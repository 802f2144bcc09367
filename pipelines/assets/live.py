"""The live part of the lake: the platform's extracts mapped onto the simulator's tables."""

from collections.abc import Iterator

import dagster as dg

from pipelines.assets.extract import extract_key
from pipelines.live import LIVE_TABLES, SOURCES, write_live_tables
from pipelines.resources import LakeResource


def live_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", "live", table])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            live_key(table),
            kinds={"parquet", "polars"},
            description=f"The live platform's {table}, mapped from the PostgreSQL extracts "
            "onto the lake contract (latest state per row; docs/marts.md lists the mapping).",
            deps=[extract_key(source) for source in SOURCES],
        )
        for table in LIVE_TABLES
    ],
    group_name="staging",
)
def live_tables(lake: LakeResource) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]  # dagster reads this annotation
    for table, rows in write_live_tables(lake.path).items():
        yield dg.MaterializeResult(asset_key=live_key(table), metadata={"dagster/row_count": rows})
