"""Where the simulator's tables live in the Parquet lake, and how they are written.

Layout (Hive style, readable by DuckDB, Polars, Spark without NEARX code)::

    <lake>/raw/<table>/city=<city>/day=<YYYY-MM-DD>/part-0.parquet   # day tables
    <lake>/raw/<table>/city=<city>/part-0.parquet                     # entity tables

Files carry their ``city_id`` and ``day`` columns too, so readers never depend on
path parsing. Writes go to a temporary name and are renamed into place, so a
crashed run never leaves a half-written partition behind.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl

ENTITY_TABLES: tuple[str, ...] = ("merchants", "customers", "couriers", "providers")


def raw_dir(lake: Path, table: str) -> Path:
    return lake / "raw" / table


def entity_path(lake: Path, table: str, city_id: str) -> Path:
    return raw_dir(lake, table) / f"city={city_id}" / "part-0.parquet"


def day_path(lake: Path, table: str, city_id: str, day: date) -> Path:
    return raw_dir(lake, table) / f"city={city_id}" / f"day={day.isoformat()}" / "part-0.parquet"


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, path)


def partition_files(lake: Path, table: str) -> list[Path]:
    """Every Parquet file of ``table`` in the raw zone, in a stable order."""
    return sorted(raw_dir(lake, table).glob("**/*.parquet"))
