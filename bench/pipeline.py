"""Data platform: simulate + full Dagster materialisation at 100k and 1M orders, and dashboard queries.

Each size runs in a fresh subprocess (so peak RSS is that run's own: simulator,
Polars staging and DuckDB marts in one process) with its own NEARX_HOME. Targets
from the issue: 1M orders end to end in under 10 minutes with peak memory under
4 GB on this 2-core machine. Dashboard queries on the marts are anchored against
the same answer computed from the raw Parquet lake, in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.result import Result

SIZES = {"100k": (100_000, 7), "1M": (1_000_000, 14)}
QUICK_SIZES = {"20k": (20_000, 2)}

DASHBOARDS: dict[str, tuple[str, str]] = {
    "city KPIs, last 7 days": (
        "SELECT * FROM daily_city WHERE day > (SELECT max(day) - 7 FROM daily_city) ORDER BY city_id, day",
        "SELECT city_id, day, count(*), sum(total_minor) FILTER (WHERE status = 'delivered') "
        "FROM {raw:orders} WHERE day > (SELECT max(day) - 7 FROM {raw:orders}) GROUP BY ALL ORDER BY 1, 2",
    ),
    "top 20 merchants by GMV": (
        "SELECT merchant_id, sum(gmv_minor) AS gmv FROM merchant_daily GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
        "SELECT merchant_id, sum(total_minor) FILTER (WHERE status = 'delivered') AS gmv FROM {raw:orders} "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
    ),
    "CO2e by city and mode": (
        "SELECT city_id, mode, sum(co2e_kg), sum(co2e_saved_kg) FROM sustainability_daily GROUP BY ALL",
        "SELECT city_id, mode, sum(co2e_kg), sum(co2e_saved_kg) FROM {raw:deliveries} "
        "WHERE status = 'delivered' GROUP BY ALL",
    ),
    "click-through by position": (
        "SELECT position, avg(clicked::INT) FROM search_impressions GROUP BY 1 ORDER BY 1",
        "SELECT position, avg(clicked::INT) FROM {raw:search_impressions} GROUP BY 1 ORDER BY 1",
    ),
}

_CHILD = """
import json, os, resource, sys, time
from datetime import date
import dagster as dg
from nearx.postgres import database_url
from nearx.settings import load_settings
from pipelines.definitions import build_definitions
from pipelines.runner import run_pipeline
from pipelines.simulation.run import SimulationSpec, simulate_to_lake

home, orders, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = {k: v for k, v in os.environ.items() if k.startswith("NEARX_")}
settings = load_settings(env | {"NEARX_HOME": home})
spec = SimulationSpec.for_total_orders(("kathmandu", "pune"), date(2026, 3, 2), days, orders)
t0 = time.perf_counter()
simulate_to_lake(settings.home / "sim-only", spec, progress=False)
simulate_s = time.perf_counter() - t0
with database_url(settings.database_url, settings.embedded_pg_dir) as url:
    defs = build_definitions(settings, database_url=url, orders_per_day=spec.orders_per_day, seed=spec.seed)
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        report = run_pipeline(defs, spec, instance)
        total_s = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
figures = {"simulate_s": simulate_s, "total_s": total_s, "peak_mb": peak_mb, "ok": report.ok,
           "problems": report.failures + report.failed_checks}
print("BENCH_RESULT", json.dumps(figures), flush=True)
"""


def _materialise(home: Path, orders: int, days: int) -> dict[str, object]:
    env = os.environ | {"NEARX_HOME": str(home)}
    if os.environ.get("NEARX_TEST_DATABASE_URL") and not os.environ.get("NEARX_DATABASE_URL"):
        env["NEARX_DATABASE_URL"] = os.environ["NEARX_TEST_DATABASE_URL"]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(home), str(orders), str(days)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT "))
    result: dict[str, object] = json.loads(line.removeprefix("BENCH_RESULT "))
    return result


def _time_query(con: object, sql: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        con.execute(sql).fetchall()  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _dashboards(home: Path, case: str) -> list[Result]:
    import duckdb

    lake = home / "lake" / "raw"
    results = []
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for name, (mart_sql, raw_sql) in DASHBOARDS.items():
            raw = raw_sql
            for table in ("orders", "deliveries", "search_impressions"):
                raw = raw.replace(
                    "{raw:" + table + "}", f"read_parquet('{lake.as_posix()}/{table}/**/*.parquet')"
                )
            results.append(
                Result(
                    "pipeline",
                    f"{case} {name}",
                    "query time",
                    _time_query(con, mart_sql),
                    "ms",
                    anchor="same answer from the raw Parquet lake",
                    anchor_value=_time_query(con, raw),
                )
            )
    return results


def run(quick: bool = False) -> list[Result]:
    results: list[Result] = []
    for case, (orders, days) in (QUICK_SIZES if quick else SIZES).items():
        with tempfile.TemporaryDirectory(prefix="nearx-bench-") as tmp:
            home = Path(tmp) / "nearx"
            figures = _materialise(home, orders, days)
            if not figures["ok"]:
                raise RuntimeError(f"pipeline failed at {case}: {figures['problems']}")
            total_s = float(figures["total_s"])  # type: ignore[arg-type]
            peak_mb = float(figures["peak_mb"])  # type: ignore[arg-type]
            results += [
                Result(
                    "pipeline",
                    f"{case} orders",
                    "simulate + materialise (Dagster)",
                    total_s,
                    "s",
                    anchor="simulate only",
                    anchor_value=float(figures["simulate_s"]),  # type: ignore[arg-type]
                    target="< 600 s at 1M" if case == "1M" else None,
                    met=total_s < 600 if case == "1M" else None,
                ),
                Result(
                    "pipeline",
                    f"{case} orders",
                    "peak memory",
                    peak_mb,
                    "MB",
                    target="< 4096 MB at 1M" if case == "1M" else None,
                    met=peak_mb < 4096 if case == "1M" else None,
                ),
            ]
            results += _dashboards(home, case)
    return results
