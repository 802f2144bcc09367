"""Opening hours: is a merchant open at an instant, judged in its city's local time.

Hours are stored as local wall-clock intervals per ISO weekday plus local
holiday dates, so a change of UTC offset (DST) never shifts a shop's hours.
A merchant with no hours configured is treated as always open (a pharmacy's
24/7 counter, a provider who works by appointment only): setting hours opts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from nearx.clock import ensure_utc


@dataclass(frozen=True, slots=True)
class Interval:
    weekday: int
    opens: time
    closes: time


def local_time(instant: datetime, timezone: str) -> datetime:
    return ensure_utc(instant).astimezone(ZoneInfo(timezone))


def is_open(hours: list[Interval], holidays: set[date], timezone: str, instant: datetime) -> bool:
    """True when ``instant`` falls inside an interval of its local weekday and is not a holiday."""
    if not hours:
        return True
    local = local_time(instant, timezone)
    if local.date() in holidays:
        return False
    now = local.time().replace(tzinfo=None)
    return any(i.weekday == local.weekday() and i.opens <= now < i.closes for i in hours)
