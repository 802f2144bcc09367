"""Review text that follows the rating and the lateness, from small phrase banks (no row loops)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

OPENERS: dict[int, tuple[str, ...]] = {
    1: ("Terrible.", "Very disappointed.", "Never again."),
    2: ("Not good.", "Below expectations.", "Disappointing."),
    3: ("It was okay.", "Average experience.", "Fine, nothing special."),
    4: ("Good food.", "Nice order.", "Pretty good."),
    5: ("Excellent!", "Loved it!", "Perfect as always."),
}
LATE = ("Arrived very late.", "Took far longer than promised.", "The delivery was slow.")
ON_TIME = ("Arrived on time.", "Quick delivery.", "Courier was fast and polite.")


def review_texts(
    rng: np.random.Generator, stars: npt.NDArray[np.int64], late: npt.NDArray[np.bool_]
) -> pl.Series:
    """One review per element: an opener for the star rating, then a remark on timeliness."""
    n = len(stars)
    bank = np.array([list(OPENERS[star]) for star in range(1, 6)], dtype=object)
    opener = bank[stars - 1, rng.integers(0, bank.shape[1], n)]
    remark = np.where(
        late,
        np.array(LATE, dtype=object)[rng.integers(0, len(LATE), n)],
        np.array(ON_TIME, dtype=object)[rng.integers(0, len(ON_TIME), n)],
    )
    return pl.Series(opener.tolist(), dtype=pl.String) + " " + pl.Series(remark.tolist(), dtype=pl.String)
