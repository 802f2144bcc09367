"""Mart assets: build a candidate in DuckDB, check it, swap it in only when blocking checks pass."""

import dagster as dg

from pipelines.assets.staging import staging_key
from pipelines.checks import check_names, evaluate_checks
from pipelines.docs import column_description
from pipelines.marts import MARTS, Mart, build_candidate, discard_candidate, swap_in, upstream_marts
from pipelines.resources import LakeResource, WarehouseResource


class MartCheckFailed(Exception):
    """A blocking check failed on the candidate; the live mart was kept."""


def mart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def _mart_asset(mart: Mart) -> dg.AssetsDefinition:
    key = mart_key(mart.name)

    @dg.asset(
        key=key,
        deps=[
            *(staging_key(table) for table in mart.staging_tables),
            *(mart_key(m) for m in upstream_marts(mart)),
        ],
        kinds={"duckdb"},
        group_name="marts",
        description=f"{mart.description} Grain: {mart.grain}.",
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=blocking) for name, blocking in check_names(mart)
        ],
    )
    def _build(
        context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]  # dagster reads this annotation
        with warehouse.connect() as con:
            rows = build_candidate(con, mart, lake.path)
            outcomes = evaluate_checks(con, mart, lake.path)
            failed = [o for o in outcomes if o.blocking and not o.passed]
            if failed:
                discard_candidate(con, mart)
            else:
                swap_in(con, mart)
            columns = con.execute(f'DESCRIBE "{mart.name}"').fetchall() if not failed else []
            preview = con.sql(f'SELECT * FROM "{mart.name}" LIMIT 5').pl() if not failed else None
        results = [
            dg.AssetCheckResult(
                check_name=o.name,
                passed=o.passed,
                severity=dg.AssetCheckSeverity.ERROR if o.blocking else dg.AssetCheckSeverity.WARN,
                metadata={"message": o.message, **o.metadata},
            )
            for o in outcomes
        ]
        if failed:
            messages = "; ".join(f"{o.name}: {o.message}" for o in failed)
            context.log.error(f"mart {mart.name} kept its previous contents: {messages}")
            return dg.MaterializeResult(
                metadata={"swapped": False, "failed_checks": messages}, check_results=results
            )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "swapped": True,
                "grain": mart.grain,
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(name, str(dtype), description=column_description(name))
                        for name, dtype, *_ in columns
                    ]
                ),
                "preview": dg.MetadataValue.md(str(preview)),
            },
            check_results=results,
        )

    return _build


mart_assets = [_mart_asset(mart) for mart in MARTS]
