"""The order context (the ``order_context`` on-demand view's features) as plain NumPy on columns.

One definition for both sides: the Feast view's pandas transformation calls this on its
request frame (training's retrieval, Feast's online server), and serving calls it on the
request's column arrays, so the two cannot drift and the scoring path builds no frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

EARTH_RADIUS_M = 6_371_008.8
PEAK_HOURS = (12, 13, 18, 19, 20)
WEEKEND = (6, 7)
"""ISO weekdays: Saturday and Sunday."""
REQUEST_FIELDS = (
    "merchant_lat",
    "merchant_lng",
    "dropoff_lat",
    "dropoff_lng",
    "local_hour",
    "weekday",
    "rain",
)
ORDER_CONTEXT_FEATURES = ("straight_m", "hour_sin", "hour_cos", "is_peak", "is_weekend", "rain_flag")


def order_context_columns(request: Mapping[str, Any]) -> dict[str, FloatArray]:
    """Haversine metres merchant → drop-off, the cyclic hour, peak, weekend and rain flags.

    ``request`` holds one array (or Series) per :data:`REQUEST_FIELDS` name; a missing
    value (NaN, null) gives NaN for what depends on it and 0 for the flags of hour and weekday.
    """
    column = {name: np.asarray(request[name], dtype=np.float64) for name in REQUEST_FIELDS}
    lat1, lat2 = np.radians(column["merchant_lat"]), np.radians(column["dropoff_lat"])
    dlng = np.radians(column["dropoff_lng"] - column["merchant_lng"])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlng / 2) ** 2
    hour = column["local_hour"]
    return {
        "straight_m": 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))),
        "hour_sin": np.sin(2 * np.pi * hour / 24),
        "hour_cos": np.cos(2 * np.pi * hour / 24),
        "is_peak": np.isin(hour, PEAK_HOURS).astype(np.float64),
        "is_weekend": np.isin(column["weekday"], WEEKEND).astype(np.float64),
        "rain_flag": column["rain"],
    }
