"""Staging: validate the raw zone of the lake against its contract and consolidate each table.

A pure function of the lake directory (Polars lazy scans, no Dagster), so the CLI,
tests and assets share it. A table's simulated partitions and its live part (the
platform's extracts mapped by ``pipelines/live.py``) are staged together, the simulated
entities the demo seeded keyed by their platform ids (``pipelines/platform_ids.py``). Bad input
stops here with a message that names the file: a corrupt partition, a schema that
drifted upstream, or a table with no partitions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.contracts import CONTRACTS
from pipelines.live import live_path
from pipelines.platform_ids import platform_ids, to_platform_ids, without_simulated_entities
from pipelines.simulation.lake import partition_files


class LakeContractError(ValueError):
    """The raw zone cannot be staged as it is; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class StagedTable:
    table: str
    path: Path
    rows: int
    files: int


def staging_path(lake: Path, table: str) -> Path:
    return lake / "staging" / f"{table}.parquet"


def schema_differences(expected: dict[str, pl.DataType], actual: pl.Schema) -> list[str]:
    """Human-readable differences between a contract and a file's schema (empty when equal)."""
    problems = [f"missing column {name!r}" for name in expected if name not in actual]
    problems += [f"unexpected column {name!r}" for name in actual if name not in expected]
    problems += [
        f"column {name!r} is {actual[name]} (expected {dtype})"
        for name, dtype in expected.items()
        if name in actual and actual[name] != dtype
    ]
    return problems


def validate_partitions(table: str, files: list[Path]) -> None:
    """Read every file's footer (cheap) and compare it with the contract before any data moves."""
    expected = CONTRACTS[table]
    for path in files:
        try:
            schema = pl.read_parquet_schema(path)
        except Exception as exc:  # any reader error means the same thing: the file is unusable
            raise LakeContractError(f"corrupt partition {path}: {exc}") from exc
        problems = schema_differences(expected, pl.Schema(schema))
        if problems:
            raise LakeContractError(f"schema change in {path}: {'; '.join(problems)}")


def stage_table(lake: Path, table: str) -> StagedTable:
    """Validate ``table``'s raw partitions and live part, and write them as one staging file, atomically."""
    live = live_path(lake, table)
    simulated = partition_files(lake, table)
    files = [*simulated, *([live] if live.exists() else [])]
    if not files:
        raise LakeContractError(f"no partitions of {table!r} under {lake / 'raw' / table} and no {live}")
    validate_partitions(table, files)
    target = staging_path(lake, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        _staged(simulated, live if live.exists() else None, table, platform_ids(lake)).sink_parquet(
            tmp, compression="zstd"
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise LakeContractError(f"reading the partitions of {table!r} failed: {exc}") from exc
    os.replace(tmp, target)
    rows = pl.scan_parquet(target).select(pl.len()).collect().item()
    return StagedTable(table, target, int(rows), len(files))


def _staged(simulated: list[Path], live: Path | None, table: str, ids: pl.LazyFrame) -> pl.LazyFrame:
    """The simulated partitions, seeded entities keyed by their platform ids, then the live part
    less the platform's rows of entities that have a simulated row."""
    own = (
        to_platform_ids(pl.scan_parquet(simulated, hive_partitioning=False), ids)
        if simulated
        else pl.LazyFrame(schema=CONTRACTS[table])
    )
    if live is None:
        return own
    return pl.concat([own, without_simulated_entities(pl.scan_parquet(live), own, table)])
