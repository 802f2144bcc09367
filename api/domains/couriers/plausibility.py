"""Which GPS fixes to believe: pure rules, so the simulator and tests share them with the API.

A fix is *used* (it may move the courier's latest position) only when nothing
is wrong with it. Flags:

* ``future``: stamped later than the server's clock allows (skew tolerance).
* ``inaccurate``: the device's own accuracy radius is worse than the threshold.
* ``too_fast``: reaching it from the last used fix needs a speed the mode cannot
  do, or the device itself reports such a speed.
* ``stale``: not newer than the last used fix (arrived late or re-sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from nearx.geo import haversine_m

FUTURE_SKEW = timedelta(seconds=30)
MAX_ACCURACY_M = 50.0
JUMP_SLACK_M = 30.0
"""Two fixes of a parked courier can differ by their accuracy radii; don't call that a jump."""


@dataclass(frozen=True, slots=True)
class Anchor:
    lat: float
    lng: float
    at: datetime


@dataclass(frozen=True, slots=True)
class RawFix:
    lat: float
    lng: float
    at: datetime
    accuracy_m: float
    speed_mps: float | None


def judge(fixes: list[RawFix], last: Anchor | None, max_speed_mps: float, now: datetime) -> list[list[str]]:
    """Flags per fix (empty = used), judging in time order against the last used fix."""
    flags: list[list[str]] = [[] for _ in fixes]
    for i in sorted(range(len(fixes)), key=lambda i: fixes[i].at):
        fix, reasons = fixes[i], flags[i]
        if fix.at > now + FUTURE_SKEW:
            reasons.append("future")
        if fix.accuracy_m > MAX_ACCURACY_M:
            reasons.append("inaccurate")
        if fix.speed_mps is not None and fix.speed_mps > max_speed_mps:
            reasons.append("too_fast")
        if last is not None:
            seconds = (fix.at - last.at).total_seconds()
            if seconds <= 0:
                reasons.append("stale")
            elif "too_fast" not in reasons:
                distance = haversine_m(last.lat, last.lng, fix.lat, fix.lng)
                if distance - JUMP_SLACK_M > max_speed_mps * seconds:
                    reasons.append("too_fast")
        if not reasons:
            last = Anchor(fix.lat, fix.lng, fix.at)
    return flags
