"""What the ``nearx pipeline``, ``nearx simulate``, ``nearx marts`` and ``nearx ui`` commands do.

``nearx/cli.py`` keeps thin Typer commands that import this module lazily, so
``nearx --help`` never pays for importing Dagster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nearx.settings import Settings
from pipelines.simulation.cities import CITIES
from pipelines.simulation.run import SimulationSpec, SimulationSummary, simulate_to_lake

DAGSTER_HOME = Path(__file__).resolve().parent.parent / "dagster_home"


def dagster_home() -> Path:
    """``DAGSTER_HOME`` if set, else the project's ``dagster_home/`` (holds ``dagster.yaml``)."""
    return Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME)


def make_spec(
    cities: list[str] | None, days: int, orders: int, start: date | None, seed: int
) -> SimulationSpec:
    """Defaults: every city, the ``days`` days up to yesterday, ``orders`` orders in total."""
    chosen = tuple(cities or sorted(CITIES))
    unknown = [city for city in chosen if city not in CITIES]
    if unknown:
        raise ValueError(f"unknown city {', '.join(unknown)}; known: {', '.join(sorted(CITIES))}")
    if days < 1 or orders < 1:
        raise ValueError("--days and --orders must be positive")
    first = start or (datetime.now(UTC).date() - timedelta(days=days))
    return SimulationSpec.for_total_orders(chosen, first, days, orders, seed)


def simulate(settings: Settings, spec: SimulationSpec, out: Path | None) -> SimulationSummary:
    from pipelines.resources import lake_path

    return simulate_to_lake(out or lake_path(settings), spec)


def run(
    settings: Settings, spec: SimulationSpec, fresh: bool, console: Console, *, train: bool = True
) -> bool:
    """Materialise the whole graph in the project's Dagster instance (the ML stage too unless
    ``train`` is false); prints a summary, returns success."""
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.resources import lake_path
    from pipelines.runner import run_pipeline

    if fresh:  # another scale or seed leaves partitions whose ids the new entities do not have
        shutil.rmtree(lake_path(settings) / "raw", ignore_errors=True)
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home()))
    defs = build_definitions(settings, seed=spec.seed, orders_per_day=spec.orders_per_day)
    with dg.DagsterInstance.get() as instance:
        report = run_pipeline(defs, spec, instance, progress=True, train=train)
    console.print(f"{report.runs} Dagster run(s); warehouse: {settings.home / 'warehouse.duckdb'}")
    for line in report.failures:
        console.print(f"[red]failed[/red] {line}")
    for line in report.failed_checks:
        console.print(f"[red]check failed[/red] {line}")
    for line in report.warnings:
        console.print(f"[yellow]warning[/yellow] {line}")
    return report.ok


def query(settings: Settings, sql: str, limit: int, console: Console) -> None:
    """Run ``sql`` read-only against the warehouse and print up to ``limit`` rows."""
    import duckdb

    from pipelines.resources import warehouse_path

    path = warehouse_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `nearx pipeline run` first")
    with duckdb.connect(str(path), read_only=True) as con:
        relation = con.sql(sql)
        if relation is None:
            console.print("ok")
            return
        rows = relation.limit(limit).fetchall()
        table = Table(*relation.columns)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)


def ui(settings: Settings, port: int) -> int:
    """``dagster dev`` on the project's definitions, with NEARX_* passed through."""
    env = os.environ | {"DAGSTER_HOME": str(dagster_home()), "NEARX_HOME": str(settings.home)}
    command = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "--port", str(port)]
    return subprocess.call(command, env=env)
