"""A merchant's price level on its two scales, and the one mapping between them.

Customers see the 1-4 quartile of a merchant's median price within its city (the matching index
computes it from the catalog). The models learn on the city simulator's scale, where a merchant's
level is drawn lognormal(0, 0.3) around 1.0 = typical for its category. A quartile stands for the
simulated level at its middle, so live impressions in the lake, the ranker's inputs at serving time
and the simulated history all speak one scale.
"""

from __future__ import annotations

from math import exp
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

SIMULATED_PRICE_SIGMA = 0.3
"""The simulator draws a merchant's price level from lognormal(0, 0.3) (``pipelines/simulation/entities.py``;
``tests/pipelines/test_live_mapping.py`` checks the two agree)."""


def model_price_level(quartile: float) -> float:
    """The simulated level at the middle of ``quartile`` (1-4; fractions such as 3.5 allowed)."""
    return round(exp(SIMULATED_PRICE_SIGMA * NormalDist().inv_cdf((quartile - 0.5) / 4)), 3)


PRICE_LEVEL_OF_QUARTILE = {quartile: model_price_level(quartile) for quartile in (1, 2, 3, 4)}
"""0.708, 0.909, 1.1, 1.412."""

_LEVEL_AT_INDEX = np.array([np.nan, *PRICE_LEVEL_OF_QUARTILE.values()])


def model_price_levels(quartiles: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """:func:`model_price_level` of many whole quartiles at once; anything else (NaN, 0, 5) is NaN."""
    values = np.asarray(quartiles, dtype=np.float64)
    known = np.isin(values, tuple(PRICE_LEVEL_OF_QUARTILE))
    return np.where(known, _LEVEL_AT_INDEX[np.where(known, values, 0).astype(np.int64)], np.nan)
