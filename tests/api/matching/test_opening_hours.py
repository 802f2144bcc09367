"""The match index's open-now memo (``OpeningHours``) answers exactly what ``is_open`` answers.

``is_open`` is the rule; the memo only decides when it may reuse an answer. So these tests ask
both, for every merchant at many instants: exact opening and closing instants and the
microsecond before them, holidays, midnights, DST changes, and jumps back in time, all through
one memo so that every stretch boundary is crossed with the memo warm.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from api.domains.matching import index
from api.domains.matching.index import OpeningHours
from api.domains.merchants.hours import Interval, is_open

MONDAY = date(2026, 3, 23)
"""The week under test starts here; Europe/Berlin springs forward on Sunday 29 March."""


def _schedules(rng: np.random.Generator) -> tuple[dict[str, list[Interval]], dict[str, set[date]], list[str]]:
    """80 merchants: none, holidays only, shared, back-to-back, over midnight (as two intervals),
    DST-gap hours, and random second/microsecond-resolution hours, some with holidays."""
    shared = [Interval(d, time(9), time(17)) for d in range(5)]
    split = [Interval(d, time(7, 30), time(12)) for d in range(7)] + [
        Interval(d, time(12), time(21, 45)) for d in range(7)
    ]
    late = [Interval(4, time(22), time(23, 59, 59, 999_999)), Interval(5, time(0), time(2))]
    dst_gap = [Interval(6, time(1), time(2, 30)), Interval(6, time(2, 15), time(3, 30))]
    ids = [str(uuid.UUID(int=i + 1)) for i in range(80)]
    hours: dict[str, list[Interval]] = {}
    holidays: dict[str, set[date]] = {}
    for i, merchant in enumerate(ids):
        kind = i % 8
        if kind == 1:
            holidays[merchant] = {MONDAY + timedelta(days=2)}
        elif kind == 2:
            hours[merchant] = shared
        elif kind == 3:
            hours[merchant] = split
        elif kind == 4:
            hours[merchant] = late
        elif kind == 5:
            hours[merchant] = dst_gap
        elif kind >= 6:
            hours[merchant] = [_random_interval(rng) for _ in range(int(rng.integers(1, 4)))]
        if kind in (2, 3, 6) and i % 3 == 0:
            holidays[merchant] = {MONDAY + timedelta(days=int(d)) for d in rng.integers(0, 7, 2)}
    return hours, holidays, ids


def _random_interval(rng: np.random.Generator) -> Interval:
    opens = int(rng.integers(0, 86_400 * 1_000_000 - 1))
    closes = int(rng.integers(opens + 1, 86_400 * 1_000_000))
    return Interval(int(rng.integers(0, 7)), _time_of(opens), _time_of(closes))


def _time_of(microseconds: int) -> time:
    seconds, micro = divmod(microseconds, 1_000_000)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)


def _instants(
    hours: dict[str, list[Interval]], timezone: str, rng: np.random.Generator
) -> Iterator[datetime]:
    """Every boundary (and the microsecond before it) on the days that matter, then random steps
    forward with a few jumps back."""
    zone = ZoneInfo(timezone)
    times = {t for intervals in hours.values() for i in intervals for t in (i.opens, i.closes)} | {time(0)}
    for day in (MONDAY + timedelta(days=d) for d in (0, 2, 4, 5, 6)):  # holidays, midnight, DST
        for t in sorted(times):
            for fold in (0, 1):
                at = datetime.combine(day, t, tzinfo=zone).replace(fold=fold).astimezone(UTC)
                yield at - timedelta(microseconds=1)
                yield at
    at = datetime.combine(MONDAY, time(0), tzinfo=zone).astimezone(UTC)
    steps = [timedelta(microseconds=1), timedelta(seconds=1), timedelta(minutes=7), timedelta(hours=1)]
    for _ in range(600):
        at += steps[int(rng.integers(0, len(steps)))] * int(rng.integers(1, 4))
        yield at
        if rng.random() < 0.05:
            yield at - timedelta(days=int(rng.integers(1, 3)))


@pytest.mark.parametrize("timezone", ["Asia/Kathmandu", "Europe/Berlin", "America/St_Johns", "UTC"])
def test_open_at_is_is_open_for_every_merchant_and_instant(timezone: str) -> None:
    rng = np.random.default_rng(17)
    hours, holidays, ids = _schedules(rng)
    opening = OpeningHours.of(timezone, ids, hours, holidays)
    everyone = np.arange(len(ids), dtype=np.int64)
    pairs = 0
    for at in _instants(hours, timezone, rng):
        expected = [is_open(hours.get(m, []), holidays.get(m, set()), timezone, at) for m in ids]
        assert opening.open_at(everyone, at).tolist() == expected, at
        pairs += len(ids)
    assert pairs > 100_000


def test_open_at_answers_for_the_positions_asked_in_their_order() -> None:
    monday_10 = datetime(2026, 3, 23, 4, 15, tzinfo=UTC)  # 10:00 in Kathmandu
    ids = ["open", "closed", "always"]
    hours = {"open": [Interval(0, time(9), time(17))], "closed": [Interval(1, time(9), time(17))]}
    opening = OpeningHours.of("Asia/Kathmandu", ids, hours, {})
    asked = np.array([2, 1, 0, 1, 0], dtype=np.int64)
    assert opening.open_at(asked, monday_10).tolist() == [True, False, True, False, True]
    assert opening.open_at(asked[:0], monday_10).tolist() == []


def test_the_memo_rolls_over_when_now_passes_a_boundary_or_a_midnight() -> None:
    zone = ZoneInfo("Asia/Kathmandu")
    ids = ["shop"]
    opening = OpeningHours.of(
        "Asia/Kathmandu", ids, {"shop": [Interval(0, time(9), time(17))]}, {"shop": {date(2026, 3, 30)}}
    )
    shop = np.zeros(1, dtype=np.int64)

    def open_at(day: date, t: time) -> bool:
        return bool(opening.open_at(shop, datetime.combine(day, t, tzinfo=zone))[0])

    tick = time(8, 59, 59, 999_999)
    assert not open_at(MONDAY, tick)
    assert open_at(MONDAY, time(9))
    assert open_at(MONDAY, time(16, 59, 59, 999_999))
    assert not open_at(MONDAY, time(17))
    assert not open_at(MONDAY + timedelta(days=1), time(10))  # Tuesday: no hours
    assert not open_at(MONDAY + timedelta(days=7), time(10))  # the next Monday is a holiday
    assert open_at(MONDAY + timedelta(days=14), time(10))
    assert open_at(MONDAY, time(12))  # back in time


def test_is_open_is_asked_once_per_schedule_and_stretch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo's point: a warm stretch answers without calling ``is_open`` at all."""
    asked: list[datetime] = []

    def counting(hours: list[Interval], holidays: set[date], timezone: str, instant: datetime) -> bool:
        asked.append(instant)
        return is_open(hours, holidays, timezone, instant)

    monkeypatch.setattr(index, "is_open", counting)
    ids = [f"m{i}" for i in range(100)]
    weekdays = [Interval(d, time(9), time(17)) for d in range(5)]
    opening = OpeningHours.of("UTC", ids, dict.fromkeys(ids[:50], weekdays), {})
    everyone = np.arange(100, dtype=np.int64)
    monday_8 = datetime(2026, 3, 23, 8, tzinfo=UTC)

    assert opening.open_at(everyone, monday_8).tolist() == [False] * 50 + [True] * 50
    assert len(asked) == 2  # the shared hours and "no hours"
    assert opening.open_at(everyone, monday_8 + timedelta(minutes=59)).sum() == 50
    assert len(asked) == 2
    assert opening.open_at(everyone, monday_8 + timedelta(hours=1)).tolist() == [True] * 100
    assert len(asked) == 4
