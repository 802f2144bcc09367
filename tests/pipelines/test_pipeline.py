"""The whole graph on a small simulated city, against real PostgreSQL and DuckDB in a tmp dir.

Then bad input: a null key, a corrupt partition and an upstream schema change are each
caught with a clear message, and the live mart keeps its previous contents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import psycopg
import pytest

from nearx.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.resources import lake_path, warehouse_path
from pipelines.runner import PipelineReport, execute, run_pipeline
from pipelines.simulation.lake import day_path
from pipelines.simulation.run import SimulationSpec

pytestmark = pytest.mark.slow
SPEC = SimulationSpec(("kathmandu", "pune"), date(2026, 2, 2), 2, orders_per_day=250, seed=11)
ORDERS_ONLY = [dg.AssetKey(["lake", "staging", "orders"]), dg.AssetKey(["marts", "orders"])]


@dataclass
class Built:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    report: PipelineReport
    lake: Path
    warehouse: Path

    def scalar(self, sql: str) -> object:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            row = con.execute(sql).fetchone()
        assert row is not None
        return row[0]

    def refresh_orders(self) -> PipelineReport:
        report = PipelineReport()
        execute(self.defs, "refresh", self.instance, report, asset_selection=ORDERS_ONLY)
        return report


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, template_db: str) -> Iterator[Built]:
    """One materialisation shared by the tests of this module (it is the slow part)."""
    from nearx.postgres import drop_database, ensure_database, with_database
    from nearx.settings import load_settings

    name = f"nearx_pipe_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name, template=template_db)
    url = with_database(pg_admin_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, display_name) VALUES (%s, 'Asha')", (uuid.uuid4(),))
        conn.execute(
            "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, payload) "
            "VALUES (%s, 'user.created', 'user', %s, %s)",
            (uuid.uuid4(), uuid.uuid4(), json.dumps({})),
        )
    settings: Settings = load_settings({"NEARX_HOME": str(tmp_path_factory.mktemp("pipeline") / "nearx")})
    defs = build_definitions(settings, database_url=url, seed=SPEC.seed, orders_per_day=SPEC.orders_per_day)
    with dg.DagsterInstance.ephemeral() as instance:
        report = run_pipeline(defs, SPEC, instance)
        yield Built(defs, instance, report, lake_path(settings), warehouse_path(settings))
    drop_database(pg_admin_url, name)


def test_whole_graph_materialises_with_every_check_passing(built: Built) -> None:
    assert built.report.failures == []
    assert built.report.failed_checks == []
    assert built.report.warnings == []
    assert built.report.runs == 2 + 4 + 1  # entities per city, one run per city-day, one refresh


def test_marts_match_the_lake(built: Built) -> None:
    orders = pl.read_parquet(built.lake / "raw" / "orders" / "**" / "*.parquet")
    assert built.scalar("SELECT count(*) FROM orders") == orders.height
    assert built.scalar("SELECT count(*) FROM daily_city") == 4
    assert built.scalar("SELECT sum(orders) FROM daily_city") == orders.height
    delivered_total = orders.filter(pl.col("status") == "delivered")["total_minor"].sum()
    assert built.scalar("SELECT sum(gmv_minor) FROM daily_city") == delivered_total
    assert built.scalar(
        "SELECT string_agg(DISTINCT city_id || ':' || currency, ',' ORDER BY 1) FROM daily_city"
    ) == ("kathmandu:NPR,pune:INR")
    assert built.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%__candidate'") == 0
    saved = built.scalar(
        "SELECT sum(co2e_saved_kg) FROM sustainability_daily WHERE mode IN ('foot', 'bicycle')"
    )
    assert isinstance(saved, float)
    assert saved > 0


def test_postgres_extracts_land_in_the_lake(built: Built) -> None:
    users = pl.read_parquet(built.lake / "postgres" / "users" / "*.parquet")
    assert users["display_name"].to_list() == ["Asha"]
    assert pl.read_parquet(built.lake / "postgres" / "outbox" / "*.parquet").height == 1


def _rewrite(built: Built, change: pl.Expr | None = None, raw: bytes | None = None) -> tuple[Path, bytes]:
    path = day_path(built.lake, "orders", "pune", SPEC.start)
    original = path.read_bytes()
    if raw is not None:
        path.write_bytes(raw)
    elif change is not None:
        pl.read_parquet(path).with_columns(change).write_parquet(path)
    return path, original


@pytest.mark.parametrize(
    ("change", "raw", "message"),
    [
        (
            pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("order_id")).alias("order_id"),
            None,
            "keys_unique_not_null: 1 row(s) with a null key (order_id)",
        ),
        (None, b"PAR1 garbage", "corrupt partition"),
        (pl.col("total_minor").cast(pl.String), None, "column 'total_minor' is String (expected Int64)"),
    ],
    ids=["null-key", "corrupt-partition", "schema-change"],
)
def test_bad_input_is_caught_and_the_mart_is_kept(
    built: Built, change: pl.Expr | None, raw: bytes | None, message: str
) -> None:
    before = built.scalar("SELECT count(*) || ':' || sum(total_minor) FROM orders")
    path, original = _rewrite(built, change, raw)
    try:
        report = built.refresh_orders()
    finally:
        path.write_bytes(original)
    assert not report.ok
    assert message in " ".join(report.failures + report.failed_checks)
    assert built.scalar("SELECT count(*) || ':' || sum(total_minor) FROM orders") == before


def test_a_day_far_below_the_previous_warns_but_does_not_block(built: Built) -> None:
    latest = SPEC.day_list[-1]
    path = day_path(built.lake, "orders", "pune", latest)
    original = path.read_bytes()
    kept = pl.read_parquet(path).head(20)
    previous = built.scalar(f"SELECT count(*) FROM orders WHERE city_id = 'pune' AND day = '{SPEC.start}'")
    kept.write_parquet(path)
    try:
        report = built.refresh_orders()
        assert report.ok  # a warning: the mart was swapped in with the quiet day
        assert report.warnings == [
            "marts/orders:row_count_anomaly: count(*) out of range vs previous day: "
            f"pune {latest}: 20 vs {previous}"
        ]
        assert built.scalar(f"SELECT count(*) FROM orders WHERE city_id = 'pune' AND day = '{latest}'") == 20
    finally:
        path.write_bytes(original)
        assert built.refresh_orders().warnings == []


def test_docs_describe_every_mart_and_column(built: Built) -> None:
    import pipelines
    from pipelines.marts import MARTS

    text = (Path(pipelines.__file__).resolve().parent.parent / "docs" / "marts.md").read_text()
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        for mart in MARTS:
            assert f"### `{mart.name}`" in text
            for column, *_ in con.execute(f'DESCRIBE "{mart.name}"').fetchall():
                assert f"| `{column}` |" in text, f"{mart.name}.{column} is not documented in docs/marts.md"
