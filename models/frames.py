"""Shared plumbing for training on Polars frames: time-ordered splits and the LightGBM input matrix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import polars as pl

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TimeSplit:
    """Train, calibration and test slices in time order (test is the newest)."""

    train: pl.DataFrame
    calibration: pl.DataFrame
    test: pl.DataFrame


def time_split(
    frame: pl.DataFrame, time_column: str | None, calibration: float = 0.1, test: float = 0.2
) -> TimeSplit:
    """Split by ``time_column`` (row order when None): no test row is older than a training row."""
    ordered = frame.sort(time_column, maintain_order=True) if time_column else frame
    n = ordered.height
    n_test, n_cal = int(n * test), int(n * calibration)
    n_train = n - n_test - n_cal
    return TimeSplit(
        ordered.slice(0, n_train), ordered.slice(n_train, n_cal), ordered.slice(n_train + n_cal, n_test)
    )


@dataclass(frozen=True)
class FeatureMatrix:
    """The columns a model reads, with fixed category lists so training and serving encode alike."""

    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @classmethod
    def infer(cls, frame: pl.DataFrame, columns: list[str]) -> FeatureMatrix:
        numeric = [c for c in columns if frame.schema[c].is_numeric() or frame.schema[c] == pl.Boolean]
        categorical = {
            c: sorted(frame[c].drop_nulls().cast(pl.String).unique().to_list())
            for c in columns
            if c not in numeric
        }
        return cls(numeric, categorical)

    def to_pandas(self, frame: pl.DataFrame | pd.DataFrame) -> pd.DataFrame:
        """The LightGBM input: floats, and pandas categoricals with the training categories.

        A Polars frame converts only the model's columns (a training frame also carries ids,
        labels and timestamps, and pandas holds each string as a Python object).
        """
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"missing feature columns: {missing}")
        data = frame if isinstance(frame, pd.DataFrame) else frame.select(self.columns).to_pandas()
        out = pd.DataFrame(index=data.index)
        for name in self.numeric:
            out[name] = pd.to_numeric(data[name], errors="coerce").astype(np.float64)
        for name, categories in self.categorical.items():
            out[name] = pd.Categorical(data[name].astype("string"), categories=categories)
        return out

    def to_numpy(self, columns: Mapping[str, Any]) -> FloatArray:
        """The same input as :meth:`to_pandas`, as the float matrix a LightGBM booster reads.

        For scoring a few hundred rows, where building the pandas frame and the sklearn
        wrapper's checks cost ten times the trees: numbers as floats, each category as its
        index in the training list and an unknown one as NaN, which is what LightGBM makes
        of the pandas categoricals (``cat.codes``, -1 as missing).
        """
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise KeyError(f"missing feature columns: {missing}")
        encoded = [as_floats(columns[name]) for name in self.numeric]
        encoded.extend(category_codes(columns[name], c) for name, c in self.categorical.items())
        return np.column_stack(encoded)


def category_codes(values: Any, categories: list[str]) -> FloatArray:
    """Each value's index in ``categories`` as a float, NaN for a missing or unknown value.

    A request's list of strings is looked up in a dict (microseconds; a pandas categorical
    costs 50 us a column). Anything else (a frame's column, numbers, missing values) goes
    through pandas' own string conversion, which defines the answer for those.
    """
    if isinstance(values, list | tuple) and all(isinstance(v, str) for v in values):
        index = {category: float(i) for i, category in enumerate(categories)}
        return np.array([index.get(v, np.nan) for v in values], dtype=np.float64)
    codes = pd.Categorical(pd.Series(values).astype("string"), categories=categories).codes
    return np.where(codes < 0, np.nan, codes.astype(np.float64))


def as_floats(values: Any) -> FloatArray:
    """One column as float64, missing and non-numeric values as NaN (``pd.to_numeric(errors="coerce")``)."""
    if isinstance(values, pl.Series):
        return values.cast(pl.Float64, strict=False).to_numpy()
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    numeric = pd.to_numeric(pd.Series(array), errors="coerce")
    return np.asarray(numeric.to_numpy(dtype=np.float64, na_value=np.nan))
