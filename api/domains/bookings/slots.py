"""Open slots of a provider on one local date: pure functions, no I/O.

Availability is local wall-clock time in the provider's city; the result is in
UTC. A candidate start lies on the provider's step grid inside an available
window, the whole service fits in the window, it is not in the past, and its
blocked span (travel before, buffer after) does not overlap an existing
booking's blocked span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    starts: time
    ends: time


@dataclass(frozen=True, slots=True)
class DayException:
    starts: time | None
    ends: time | None
    available: bool


@dataclass(frozen=True, slots=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


def windows_for(
    day: date, weekly: dict[int, list[Window]], exceptions: list[DayException]
) -> list[tuple[time, time]]:
    """The available local windows of ``day``: weekly hours, minus time off, plus extra hours."""
    if any(not e.available and e.starts is None for e in exceptions):
        return []
    minutes: set[int] = set()
    for window in weekly.get(day.weekday(), []):
        minutes.update(range(_m(window.starts), _m(window.ends)))
    for extra in exceptions:
        if extra.available and extra.starts is not None and extra.ends is not None:
            minutes.update(range(_m(extra.starts), _m(extra.ends)))
    for off in exceptions:
        if not off.available and off.starts is not None and off.ends is not None:
            minutes.difference_update(range(_m(off.starts), _m(off.ends)))
    return _runs(sorted(minutes))


def _m(value: time) -> int:
    return value.hour * 60 + value.minute


def _runs(minutes: list[int]) -> list[tuple[time, time]]:
    """Consecutive minutes of the day folded into (start, end) windows."""
    runs: list[tuple[int, int]] = []
    start = previous = None
    for minute in minutes:
        if start is None or previous is None or minute != previous + 1:
            if start is not None and previous is not None:
                runs.append((start, previous + 1))
            start = minute
        previous = minute
    if start is not None and previous is not None:
        runs.append((start, previous + 1))
    return [(_t(a), _t(b)) for a, b in runs]


def _t(minute: int) -> time:
    return time.max if minute >= 24 * 60 else time(minute // 60, minute % 60)


def open_slots(
    day: date,
    timezone: str,
    windows: list[tuple[time, time]],
    *,
    duration_min: int,
    step_min: int,
    travel_min: int,
    buffer_min: int,
    busy: list[tuple[datetime, datetime]],
    now: datetime,
) -> list[Slot]:
    zone = ZoneInfo(timezone)
    slots: list[Slot] = []
    duration, step = timedelta(minutes=duration_min), timedelta(minutes=step_min)
    before, after = timedelta(minutes=travel_min), timedelta(minutes=buffer_min)
    for window_start, window_end in windows:
        start = datetime.combine(day, window_start, zone)
        end = (
            datetime.combine(day, window_end, zone)
            if window_end != time.max
            else datetime.combine(day + timedelta(days=1), time(0), zone)
        )
        while start + duration <= end:
            slot_end = start + duration
            blocked = (start - before, slot_end + after)
            if start > now and not any(b0 < blocked[1] and blocked[0] < b1 for b0, b1 in busy):
                slots.append(Slot(start.astimezone(UTC), slot_end.astimezone(UTC)))
            start += step
    return slots


def is_bookable(
    starts_at: datetime, timezone: str, windows: list[tuple[time, time]], *, duration_min: int, step_min: int
) -> bool:
    """Whether a start lies on the step grid of an available window and the service fits in it."""
    local = starts_at.astimezone(ZoneInfo(timezone))
    candidates = open_slots(
        local.date(),
        timezone,
        windows,
        duration_min=duration_min,
        step_min=step_min,
        travel_min=0,
        buffer_min=0,
        busy=[],
        now=datetime.min.replace(tzinfo=UTC),
    )
    return any(slot.starts_at == starts_at for slot in candidates)
