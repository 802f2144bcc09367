"""Pure functions: the lake contract, staging errors, check specs, CLI spec parsing, sensor rule."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.checks import check_names
from pipelines.cli import make_spec
from pipelines.contracts import CONTRACTS
from pipelines.marts import MARTS_BY_NAME, render_sql
from pipelines.sensors import outbox_advanced
from pipelines.simulation.cities import PUNE
from pipelines.simulation.entities import Scale, generate_entities
from pipelines.simulation.lake import entity_path
from pipelines.simulation.run import ENTITIES_AS_OF
from pipelines.staging import LakeContractError, schema_differences, stage_table


@pytest.mark.parametrize(
    ("actual", "expected_problems"),
    [
        ({"a": pl.String(), "b": pl.Int64()}, []),
        ({"a": pl.String()}, ["missing column 'b'"]),
        ({"a": pl.String(), "b": pl.Int64(), "c": pl.Int8()}, ["unexpected column 'c'"]),
        ({"a": pl.String(), "b": pl.String()}, ["column 'b' is String (expected Int64)"]),
    ],
)
def test_schema_differences(actual: dict[str, pl.DataType], expected_problems: list[str]) -> None:
    contract: dict[str, pl.DataType] = {"a": pl.String(), "b": pl.Int64()}
    assert schema_differences(contract, pl.Schema(actual)) == expected_problems


@pytest.fixture
def lake_with_merchants(tmp_path: Path) -> Path:
    entities = generate_entities(PUNE, 1, Scale.for_orders_per_day(100), ENTITIES_AS_OF)
    path = entity_path(tmp_path, "merchants", "pune")
    path.parent.mkdir(parents=True)
    entities.merchants.write_parquet(path)
    return tmp_path


def test_staging_consolidates_valid_partitions(lake_with_merchants: Path) -> None:
    staged = stage_table(lake_with_merchants, "merchants")
    assert staged.rows == 25
    assert staged.files == 1
    assert pl.read_parquet_schema(staged.path) == CONTRACTS["merchants"]


def test_corrupt_partition_is_named(lake_with_merchants: Path) -> None:
    bad = entity_path(lake_with_merchants, "merchants", "kathmandu")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LakeContractError, match=r"corrupt partition .*city=kathmandu"):
        stage_table(lake_with_merchants, "merchants")


def test_schema_change_is_described(lake_with_merchants: Path) -> None:
    path = entity_path(lake_with_merchants, "merchants", "pune")
    pl.read_parquet(path).rename({"category": "kind"}).write_parquet(path)
    with pytest.raises(LakeContractError, match="missing column 'category'; unexpected column 'kind'"):
        stage_table(lake_with_merchants, "merchants")


def test_missing_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LakeContractError, match="no partitions of 'orders'"):
        stage_table(tmp_path, "orders")


def test_daily_marts_get_freshness_and_anomaly_warnings() -> None:
    names = dict(check_names(MARTS_BY_NAME["orders"]))
    assert names["freshness"] is False
    assert names["row_count_anomaly"] is False
    assert names["fk_customer_id"] is True
    assert "freshness" not in dict(check_names(MARTS_BY_NAME["merchants"]))


def test_mart_sql_reads_staging_parquet(tmp_path: Path) -> None:
    sql = render_sql(MARTS_BY_NAME["orders"], tmp_path)
    assert f"read_parquet('{tmp_path.as_posix()}/staging/orders.parquet')" in sql


@pytest.mark.parametrize(
    ("position", "cursors", "advanced"),
    [(0, {}, False), (3, {}, True), (3, {"outbox": ["3"]}, False), (4, {"outbox": ["3"]}, True)],
)
def test_outbox_sensor_rule(position: int, cursors: dict[str, list[str]], advanced: bool) -> None:
    assert outbox_advanced(position, cursors) is advanced


def test_cli_spec_spreads_orders_and_rejects_bad_input() -> None:
    spec = make_spec(None, 10, 100_000, date(2026, 2, 1), 1)
    assert spec.cities == ("kathmandu", "pune")
    assert spec.orders_per_day == 5000
    with pytest.raises(ValueError, match="unknown city atlantis"):
        make_spec(["atlantis"], 1, 10, None, 1)
    with pytest.raises(ValueError, match="must be positive"):
        make_spec(None, 0, 10, None, 1)
