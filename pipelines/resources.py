"""Resources: where the lake, the warehouse and PostgreSQL are, behind small interfaces.

The local implementations are a directory, a DuckDB file and a PostgreSQL URL (the
embedded server when none is configured). Production swaps the values (object
storage for the lake, MotherDuck or a shared DuckDB path, a managed PostgreSQL)
through settings; asset code only sees these methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from nearx.settings import Settings


class LakeResource(dg.ConfigurableResource["LakeResource"]):
    """The Parquet lake root."""

    root: str

    @property
    def path(self) -> Path:
        path = Path(self.root)
        path.mkdir(parents=True, exist_ok=True)
        return path


class WarehouseResource(dg.ConfigurableResource["WarehouseResource"]):
    """The DuckDB warehouse that holds the marts."""

    database: str

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.database)
        try:
            yield con
        finally:
            con.close()


class PostgresResource(dg.ConfigurableResource["PostgresResource"]):
    """The platform's system of record; ``url`` empty means the embedded server under ``pg_dir``."""

    url: str = ""
    pg_dir: str = ""

    @contextmanager
    def resolved_url(self) -> Iterator[str]:
        from nearx.postgres import database_url

        with database_url(self.url or None, Path(self.pg_dir)) as url:
            yield url


class SimulationResource(dg.ConfigurableResource["SimulationResource"]):
    """How big the simulated city is and which seed drives it."""

    seed: int = 42
    orders_per_day: int = 2000


def lake_path(settings: Settings) -> Path:
    return settings.home / "lake"


def warehouse_path(settings: Settings) -> Path:
    return settings.home / "warehouse.duckdb"


def build_resources(
    settings: Settings, *, database_url: str | None = None, seed: int = 42, orders_per_day: int = 2000
) -> dict[str, dg.ConfigurableResource[Any]]:
    """The resource set for ``settings`` (the one composition point for assets, CLI and tests)."""
    return {
        "lake": LakeResource(root=str(lake_path(settings))),
        "warehouse": WarehouseResource(database=str(warehouse_path(settings))),
        "postgres": PostgresResource(
            url=database_url or settings.database_url or "", pg_dir=str(settings.embedded_pg_dir)
        ),
        "simulation": SimulationResource(seed=seed, orders_per_day=orders_per_day),
    }
