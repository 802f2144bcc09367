"""Trailing windows stamped at their end: the one rule that keeps every feature point-in-time correct.

A window for day D covers events known in ``[D + 1 - period, D + 1)`` (UTC) and is
stamped ``D + 1 00:00``: the moment its value could first have been computed. Feast's
historical retrieval then joins, for each training row, the newest snapshot stamped at
or before the row's own time, so no value computed from later events can reach it.
Events are placed at the time their outcome became known (a pick-up, a delivery, a
review), not at the order's creation, for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

EVENT_TIMESTAMP = "event_timestamp"
WINDOW_DAYS = 28


def trailing_daily(
    frame: pl.LazyFrame,
    *,
    known_at: str,
    keys: Sequence[str],
    aggs: Sequence[pl.Expr],
    days: int = WINDOW_DAYS,
) -> pl.LazyFrame:
    """One row per key and day with ``aggs`` over the trailing ``days`` days, stamped at the window end."""
    return (
        frame.filter(pl.col(known_at).is_not_null())
        .sort(known_at)
        .group_by_dynamic(
            known_at,
            every="1d",
            period=f"{days}d",
            offset=f"-{days - 1}d",
            group_by=list(keys),
            closed="left",
            label="right",
            start_by="window",
        )
        .agg(*aggs)
        .rename({known_at: EVENT_TIMESTAMP})
    )
