"""The one mapping between the platform's price quartiles and the models' price scale."""

from __future__ import annotations

import numpy as np
import pytest

from nearx.price_levels import PRICE_LEVEL_OF_QUARTILE, model_price_level, model_price_levels


def test_quartiles_map_to_the_middle_of_their_quarter_of_the_lognormal() -> None:
    assert PRICE_LEVEL_OF_QUARTILE == {1: 0.708, 2: 0.909, 3: 1.1, 4: 1.412}
    assert model_price_level(2.5) == 1.0  # the median quartile boundary is the typical level


@pytest.mark.parametrize(
    ("quartiles", "expected"),
    [
        ([1, 4, 2], [0.708, 1.412, 0.909]),
        ([np.nan, 3, 0, 5], [np.nan, 1.1, np.nan, np.nan]),
        ([], []),
    ],
)
def test_many_quartiles_at_once_and_unknown_ones_are_nan(
    quartiles: list[float], expected: list[float]
) -> None:
    np.testing.assert_array_equal(model_price_levels(quartiles), np.array(expected, dtype=np.float64))
