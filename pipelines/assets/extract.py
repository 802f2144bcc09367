"""Extract assets: one per live PostgreSQL table listed in ``EXTRACT_TABLES``."""

import dagster as dg
import psycopg

from pipelines.extract import EXTRACT_TABLES, ExtractTable, extract_table
from pipelines.resources import LakeResource, PostgresResource


def extract_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", "postgres", table])


def _extract_asset(table: ExtractTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=extract_key(table.name),
        kinds={"postgres", "parquet"},
        group_name="extract",
        description=f"Rows of {table.name} changed since the last extract, by {', '.join(table.cursor)}.",
    )
    def _extract(lake: LakeResource, postgres: PostgresResource) -> dg.MaterializeResult[None]:
        with postgres.resolved_url() as url, psycopg.connect(url) as conn:
            result = extract_table(conn, lake.path, table)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": result.rows, "cursor": ", ".join(result.cursor or []) or "start"}
        )

    return _extract


extract_assets = [_extract_asset(table) for table in EXTRACT_TABLES]
