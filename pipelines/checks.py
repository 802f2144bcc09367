"""Data-quality checks on a mart candidate, evaluated before it may replace the live mart.

Each mart declares its keys, foreign keys and value rules as data (``pipelines/marts.py``);
this module turns them into SQL. Blocking checks (keys, not-null, foreign keys, rules)
stop the swap and everything downstream; warnings (freshness, row-count anomaly
against the previous day partition) are reported but do not block: a quiet day is
worth a look, not a reason to hide the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.marts import Mart, candidate_name
from pipelines.simulation.lake import raw_dir

ANOMALY_RATIO = (0.5, 2.0)
"""Latest day's volume per city must be within this ratio of the previous day's."""
ANOMALY_MIN_ROWS = 200
"""Below this volume on the previous day, day-to-day noise says nothing: the check abstains."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    message: str
    metadata: dict[str, float | int | str] = field(default_factory=dict)


def check_names(mart: Mart) -> list[tuple[str, bool]]:
    """(name, blocking) for every check of ``mart``: the specs Dagster registers."""
    names = [("keys_unique_not_null", True)]
    if mart.not_null:
        names.append(("not_null", True))
    names += [(f"fk_{fk.column}", True) for fk in mart.foreign_keys]
    names += [(f"rule_{rule}", True) for rule, _ in mart.rules]
    if mart.daily:
        names += [("freshness", False), ("row_count_anomaly", False)]
    return names


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def _count_check(name: str, bad: int, what: str) -> CheckOutcome:
    message = "ok" if bad == 0 else f"{bad} row(s) {what}"
    return CheckOutcome(name, bad == 0, True, message, {"failing_rows": bad})


def evaluate_checks(con: duckdb.DuckDBPyConnection, mart: Mart, lake: Path) -> list[CheckOutcome]:
    """Run every check of ``mart`` against its candidate table."""
    table = f'"{candidate_name(mart)}"'
    keys = ", ".join(mart.keys)
    outcomes: list[CheckOutcome] = []
    null_keys = _scalar(
        con, f"SELECT count(*) FROM {table} WHERE " + " OR ".join(f"{k} IS NULL" for k in mart.keys)
    )
    dupes = _scalar(
        con, f"SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
    )
    outcomes.append(
        CheckOutcome(
            "keys_unique_not_null",
            null_keys == 0 and dupes == 0,
            True,
            "ok"
            if null_keys == dupes == 0
            else f"{null_keys} row(s) with a null key ({keys}), {dupes} duplicate key(s)",
            {"null_keys": null_keys, "duplicate_keys": dupes},
        )
    )
    if mart.not_null:
        condition = " OR ".join(f"{column} IS NULL" for column in mart.not_null)
        bad = _scalar(con, f"SELECT count(*) FROM {table} WHERE {condition}")
        outcomes.append(_count_check("not_null", bad, f"with a null in one of {', '.join(mart.not_null)}"))
    for fk in mart.foreign_keys:
        bad = _scalar(
            con,
            f"SELECT count(*) FROM {table} c WHERE c.{fk.column} IS NOT NULL AND NOT EXISTS "
            f'(SELECT 1 FROM "{fk.parent}" p WHERE p.{fk.parent_column} = c.{fk.column})',
        )
        outcomes.append(_count_check(f"fk_{fk.column}", bad, f"whose {fk.column} is not in {fk.parent}"))
    for rule, condition in mart.rules:
        bad = _scalar(con, f"SELECT count(*) FROM {table} WHERE NOT coalesce(({condition}), false)")
        outcomes.append(_count_check(f"rule_{rule}", bad, f"break the rule {condition!r}"))
    if mart.daily:
        outcomes += [_freshness(con, table, lake), row_count_anomaly(con, mart)]
    return outcomes


def _freshness(con: duckdb.DuckDBPyConnection, table: str, lake: Path) -> CheckOutcome:
    """The mart must reach the newest day simulated into the lake (staging did not lag)."""
    days = sorted({part.name.removeprefix("day=") for part in raw_dir(lake, "orders").glob("city=*/day=*")})
    row = con.execute(f"SELECT max(day)::VARCHAR FROM {table}").fetchone()
    latest = row[0] if row else None
    if not days:
        return CheckOutcome("freshness", True, False, "no day partitions in the lake to compare with")
    passed = latest is not None and latest >= days[-1]
    message = "ok" if passed else f"mart ends at {latest} but the lake has data up to {days[-1]}"
    return CheckOutcome(
        "freshness", passed, False, message, {"mart_max_day": str(latest), "lake_max_day": days[-1]}
    )


def row_count_anomaly(con: duckdb.DuckDBPyConnection, mart: Mart) -> CheckOutcome:
    """The latest day's volume (``mart.volume``, rows by default) per city against the previous day
    present in the candidate: a collapse or a spike is suspicious (a partial upstream load, a
    duplicated partition)."""
    rows = con.execute(
        f"""
        WITH per_day AS (
            SELECT city_id, day, {mart.volume} AS n FROM "{candidate_name(mart)}" GROUP BY ALL
        ),
        ranked AS (SELECT *, row_number() OVER (PARTITION BY city_id ORDER BY day DESC) AS r FROM per_day)
        SELECT a.city_id, a.day::VARCHAR, a.n, b.n FROM ranked a JOIN ranked b
          ON a.city_id = b.city_id AND a.r = 1 AND b.r = 2
        """
    ).fetchall()
    low, high = ANOMALY_RATIO
    odd = [
        f"{city} {day}: {latest} vs {previous}"
        for city, day, latest, previous in rows
        if previous >= ANOMALY_MIN_ROWS and not low <= latest / previous <= high
    ]
    message = "ok" if not odd else f"{mart.volume} out of range vs previous day: " + "; ".join(odd)
    return CheckOutcome("row_count_anomaly", not odd, False, message, {"cities_compared": len(rows)})
