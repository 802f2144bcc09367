"""The row-count anomaly check: the newest day per city against the day before it."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from pipelines.checks import row_count_anomaly
from pipelines.marts import MARTS_BY_NAME, candidate_name


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


def _orders(con: duckdb.DuckDBPyConnection, per_day: dict[str, dict[str, int]]) -> None:
    """An orders candidate with ``per_day[city][day]`` rows."""
    con.execute(f'CREATE TABLE "{candidate_name(MARTS_BY_NAME["orders"])}" (city_id VARCHAR, day DATE)')
    for city, days in per_day.items():
        for day, n in days.items():
            con.execute(
                f'INSERT INTO "{candidate_name(MARTS_BY_NAME["orders"])}" SELECT ?, ?::DATE FROM range(?)',
                [city, day, n],
            )


@pytest.mark.parametrize(
    ("previous", "latest", "passed"),
    [
        (400, 390, True),  # an ordinary day
        (400, 250, True),  # quieter, within half
        (400, 120, False),  # a partition far below the previous: a partial load
        (400, 900, False),  # more than double: a duplicated partition
        (150, 5, True),  # too small a previous day to judge: the check abstains
    ],
)
def test_latest_day_is_compared_with_the_previous(
    con: duckdb.DuckDBPyConnection, previous: int, latest: int, passed: bool
) -> None:
    _orders(con, {"pune": {"2026-02-01": 400, "2026-02-02": previous, "2026-02-03": latest}})
    outcome = row_count_anomaly(con, MARTS_BY_NAME["orders"])
    assert outcome.passed is passed
    assert outcome.blocking is False
    assert outcome.metadata["cities_compared"] == 1
    if not passed:
        assert (
            outcome.message
            == f"count(*) out of range vs previous day: pune 2026-02-03: {latest} vs {previous}"
        )


def test_each_city_is_judged_on_its_own(con: duckdb.DuckDBPyConnection) -> None:
    _orders(
        con,
        {"pune": {"2026-02-02": 300, "2026-02-03": 310}, "kathmandu": {"2026-02-02": 300, "2026-02-03": 30}},
    )
    outcome = row_count_anomaly(con, MARTS_BY_NAME["orders"])
    assert not outcome.passed
    assert "kathmandu 2026-02-03: 30 vs 300" in outcome.message
    assert "pune" not in outcome.message


def test_one_row_per_day_marts_compare_the_activity_they_count(con: duckdb.DuckDBPyConnection) -> None:
    daily = MARTS_BY_NAME["daily_city"]
    con.execute(
        f'CREATE TABLE "{candidate_name(daily)}" AS SELECT * FROM (VALUES '
        "('pune', '2026-02-02'::DATE, 420), ('pune', '2026-02-03'::DATE, 60)) t(city_id, day, orders)"
    )
    outcome = row_count_anomaly(con, daily)
    assert not outcome.passed
    assert outcome.message == "sum(orders) out of range vs previous day: pune 2026-02-03: 60 vs 420"
