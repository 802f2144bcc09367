"""The order context: one NumPy definition, which the Feast view's transformation runs as registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.store import apply_repo, open_store
from features.transforms.context import ORDER_CONTEXT_FEATURES, order_context_columns
from features.views import order_context
from nearx.settings import load_settings

REQUEST = pd.DataFrame(
    {
        "merchant_lat": [27.70, 27.70, np.nan],
        "merchant_lng": [85.30, 85.30, 85.30],
        "dropoff_lat": [27.71, 28.70, 27.71],
        "dropoff_lng": [85.30, 85.30, 85.31],
        "local_hour": [19, 6, 12],
        "weekday": [6, 2, 7],
        "rain": [1, 0, 0],
    }
)


def test_the_context_is_distance_hour_weekend_and_rain() -> None:
    context = order_context_columns({name: REQUEST[name].to_numpy() for name in REQUEST.columns})
    assert tuple(context) == ORDER_CONTEXT_FEATURES
    assert context["straight_m"][:2] == pytest.approx([1_112, 111_195], rel=1e-3)  # 0.01 and 1 degree north
    assert np.isnan(context["straight_m"][2])  # no merchant position, no distance
    assert context["hour_sin"][1] == pytest.approx(1.0)  # 06:00 is a quarter of the day
    assert context["is_peak"].tolist() == [1.0, 0.0, 1.0]
    assert context["is_weekend"].tolist() == [1.0, 0.0, 1.0]
    assert context["rain_flag"].tolist() == [1.0, 0.0, 0.0]


def test_the_view_registered_in_feast_computes_exactly_the_arrays(tmp_path: Path) -> None:
    store = open_store(load_settings({"NEARX_HOME": str(tmp_path / "home")}), tmp_path / "features")
    apply_repo(store)
    registered = store.get_on_demand_feature_view("order_context").feature_transformation
    expected = order_context_columns({name: REQUEST[name].to_numpy() for name in REQUEST.columns})
    for transformation in (registered, order_context.feature_transformation):
        computed = transformation.transform(REQUEST)
        assert list(computed.columns) == list(ORDER_CONTEXT_FEATURES)
        for name, values in expected.items():
            np.testing.assert_array_equal(computed[name].to_numpy(), values)
