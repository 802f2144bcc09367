"""Bring your own data: ETA and fraud training and evaluation on a user's file (``nearx models evaluate``).

Columns (documented in ``docs/models.md``):

- ETA: ``distance_m`` and ``duration_s`` (numbers, seconds) are required.
- Fraud: ``label`` (0/1 or true/false) is required; ``amount`` (order value) is optional
  and prices the expected cost (without it every order counts as one unit).
- Time: ``created_at`` (a timestamp), else ``hour`` plus ``day_of_week``; the split is by
  time when ``created_at`` exists, else by row order (the file's order is taken as time).
- Every other column is an extra feature: numbers as numbers, anything else as a category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from models import eta, fraud
from models.frames import TimeSplit, time_split
from nearx.routing import Mode, default_profile

MIN_ROWS = 200


class DataError(ValueError):
    """The file cannot be used as it is; the message says what to fix."""


def read_table(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, try_parse_dates=True, infer_schema_length=10_000)
        if suffix in {".parquet", ".pq"}:
            return pl.read_parquet(path)
    except Exception as exc:  # any reader error means the same thing to the user
        raise DataError(f"{path}: cannot read it ({exc})") from exc
    raise DataError(f"{path}: use a .csv or .parquet file")


def _require(frame: pl.DataFrame, numeric: list[str]) -> None:
    missing = [c for c in numeric if c not in frame.columns]
    if missing:
        raise DataError(f"missing required column(s): {', '.join(missing)}")
    for column in numeric:
        dtype = frame.schema[column]
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            raise DataError(f"column {column!r} must be numeric, found {dtype}")
        if frame[column].null_count():
            raise DataError(f"column {column!r} has {frame[column].null_count()} empty value(s)")
    if frame.height < MIN_ROWS:
        raise DataError(f"too few rows: {frame.height} (need at least {MIN_ROWS})")


def _with_time(frame: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Derive ``hour`` and ``day_of_week`` from ``created_at``; return the column to split by."""
    if "created_at" in frame.columns:
        created = frame["created_at"]
        if created.dtype == pl.String:
            try:
                created = created.str.to_datetime()
            except Exception as exc:
                raise DataError(f"column 'created_at' is not a timestamp ({exc})") from exc
        if not created.dtype.is_temporal():
            raise DataError(f"column 'created_at' must be a timestamp, found {created.dtype}")
        frame = frame.with_columns(created.alias("created_at")).with_columns(
            hour=pl.col("created_at").dt.hour().cast(pl.Int64),
            day_of_week=pl.col("created_at").dt.weekday().cast(pl.Int64),
        )
        return frame, "created_at"
    for column in ("hour", "day_of_week"):
        if column in frame.columns and not frame.schema[column].is_numeric():
            raise DataError(f"column {column!r} must be numeric, found {frame.schema[column]}")
    return frame, None


def _features(frame: pl.DataFrame, exclude: set[str]) -> list[str]:
    return [c for c in frame.columns if c not in exclude and not frame.schema[c].is_temporal()]


def routing_from_distance_s(frame: pl.DataFrame) -> np.ndarray:
    """The routing provider's travel time for a road distance: motorbike (or the row's ``mode``)
    at the row's hour (noon when unknown)."""
    profile = default_profile()
    hours = (
        frame["hour"].fill_null(12).cast(pl.Int64).to_list()
        if "hour" in frame.columns
        else [12] * frame.height
    )
    known = {m.value for m in Mode}
    modes = (
        [
            m if m in known else "motorbike"
            for m in frame["mode"].cast(pl.String).fill_null("motorbike").to_list()
        ]
        if "mode" in frame.columns
        else ["motorbike"] * frame.height
    )
    speed = np.array([profile.speed_mps(Mode(m), int(h) % 24) for m, h in zip(modes, hours, strict=True)])
    return np.asarray(frame["distance_m"].to_numpy() / speed)


def evaluate_eta(frame: pl.DataFrame) -> dict[str, float]:
    """Train and evaluate the ETA model on ``frame``; MAE in seconds against both baselines."""
    _require(frame, ["distance_m", "duration_s"])
    frame, time_column = _with_time(frame)
    frame = frame.with_columns(pl.col("distance_m", "duration_s").cast(pl.Float64))
    features = _features(frame, {"duration_s"})
    split = time_split(frame, time_column)
    result = eta.train_eta(split, features)
    handling = float(np.median(split.train["duration_s"].to_numpy() - routing_from_distance_s(split.train)))
    routing = routing_from_distance_s(split.test) + handling
    metrics = dict(result.metrics)
    metrics["baseline_routing_mae_s"] = float(np.mean(np.abs(routing - split.test["duration_s"].to_numpy())))
    metrics["mae_vs_routing"] = metrics["mae_s"] / metrics["baseline_routing_mae_s"] - 1.0
    return metrics


def evaluate_fraud(frame: pl.DataFrame) -> dict[str, float]:
    """Train and evaluate the fraud model on ``frame`` (``label`` required)."""
    _require(frame, ["label"])
    labels = frame["label"].cast(pl.Int64)
    if not labels.is_in([0, 1]).all():
        raise DataError("column 'label' must hold only 0/1 (or true/false)")
    frame, time_column = _with_time(frame.with_columns(labels.alias("label")))
    if "amount" in frame.columns:
        _require(frame, ["amount"])
        frame = frame.with_columns(pl.col("amount").cast(pl.Float64).alias(fraud.AMOUNT)).drop("amount")
    else:
        frame = frame.with_columns(pl.lit(1.0).alias(fraud.AMOUNT))
    features = _features(
        frame, {"label"} | ({fraud.AMOUNT} if frame[fraud.AMOUNT].n_unique() == 1 else set())
    )
    split = time_split(frame, time_column, calibration=0.2, test=0.2)
    _positives(split)
    return fraud.train_fraud(split, features).metrics


def _positives(split: TimeSplit) -> None:
    for name, part in (("training", split.train), ("calibration", split.calibration), ("test", split.test)):
        if int(part["label"].sum()) == 0:
            raise DataError(f"the {name} slice (by time) has no rows with label 1: need more fraud examples")


EVALUATORS = {"eta": evaluate_eta, "fraud": evaluate_fraud}
