"""Write the offline feature tables that the Feast FileSources read (the features asset calls this)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from features.transforms.tables import FEATURE_TABLES

LAKE_TABLES: tuple[str, ...] = (
    "merchants",
    "customers",
    "couriers",
    "orders",
    "deliveries",
    "payments",
    "refunds",
    "reviews",
)
"""The lake tables the transforms read."""


def feature_table_path(features_dir: Path, view: str) -> Path:
    return features_dir / f"{view}.parquet"


def scan_lake(paths: Mapping[str, Path | list[Path]]) -> dict[str, pl.LazyFrame]:
    """Lazy scans of the lake tables the transforms need (one file or a list of partitions each)."""
    missing = sorted(set(LAKE_TABLES) - set(paths))
    if missing:
        raise KeyError(f"lake tables missing: {missing}")
    return {table: pl.scan_parquet(paths[table]) for table in LAKE_TABLES}


def write_feature_tables(tables: Mapping[str, pl.LazyFrame], features_dir: Path) -> dict[str, int]:
    """Compute every feature table from ``tables`` and replace its Parquet file atomically; rows per view."""
    features_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for view, transform in FEATURE_TABLES.items():
        frame = transform(tables).collect()
        # Feast types every numeric feature as Float64 (counts included: nulls stay nulls, not NaN ints).
        frame = frame.with_columns(pl.selectors.numeric().cast(pl.Float64))
        target = feature_table_path(features_dir, view)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        frame.write_parquet(tmp)
        os.replace(tmp, target)
        rows[view] = frame.height
    return rows
