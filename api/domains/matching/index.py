"""The in-memory index of live merchants that ``/v1/match`` searches (no SQL on the request path).

A snapshot per load: per city, one :class:`~nearx.proximity.ProximityIndex` over every live
merchant and one per category, with the columns ranking needs. :class:`IndexHolder` keeps the
current snapshot and a background task swaps in a new one when the database fingerprint
(``repository.snapshot_version``: merchants' updates, live count, hours, holidays) changes,
checked every ``check_interval_s`` (5 s): approval, suspension, the busy switch and hour
edits reach matching within that bound. The swap is one assignment; requests keep the
snapshot they started with.

Text columns are object arrays and opening hours are grouped into schedules with a memo per
stretch of local time (:class:`OpeningHours`), so a request reads its ~200 candidates with a
few gathers instead of a Python step per candidate.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import numpy.typing as npt

from api.domains.matching import repository
from api.domains.merchants.hours import Interval, is_open, local_time
from nearx.db import Pool
from nearx.proximity import ProximityIndex

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class City:
    id: str
    country: str
    timezone: str
    bbox: tuple[float, float, float, float]

    def contains(self, lat: float, lng: float) -> bool:
        min_lat, min_lng, max_lat, max_lng = self.bbox
        return min_lat <= lat <= max_lat and min_lng <= lng <= max_lng


class OpeningHours:
    """Which merchants of one city are open at an instant, without an ``is_open`` call per candidate.

    ``is_open`` reads a merchant's hours and holidays, the local date, and the local time only
    through which opening and closing times it has reached. So merchants with the same hours and
    holidays share every answer (one *schedule*; number 0 is "none", always open), and all
    answers stand still within one local date and one stretch between two consecutive boundaries
    (any interval's ``opens`` or ``closes`` in the city). A memo per stretch holds each
    schedule's answer, filled from ``is_open`` itself the first time a request meets that
    schedule in the stretch: a warm request is one gather, a cold one at most one call per
    distinct schedule among its candidates (never more than one per candidate, as before).
    The stretch is keyed by local date and time rather than a UTC expiry, so a DST change needs
    no special case, and a request for an earlier instant simply starts a new memo.
    """

    def __init__(
        self,
        timezone: str,
        schedule_of: IntArray,
        hours: list[list[Interval]],
        holidays: list[set[date]],
    ) -> None:
        self.timezone = timezone
        self._schedule_of = schedule_of
        self._hours = hours
        self._holidays = holidays
        self._boundaries = sorted({t for h in hours for i in h for t in (i.opens, i.closes)})
        self._memo: tuple[tuple[date, int], npt.NDArray[np.int8]] = ((date.min, -1), self._blank())

    @classmethod
    def of(
        cls, timezone: str, ids: list[str], hours: dict[str, list[Interval]], holidays: dict[str, set[date]]
    ) -> OpeningHours:
        """Group the merchants ``ids`` (in position order) by their hours and holidays."""
        numbers: dict[tuple[frozenset[Interval], frozenset[date]], int] = {(frozenset(), frozenset()): 0}
        schedule_hours: list[list[Interval]] = [[]]
        schedule_holidays: list[set[date]] = [set()]
        schedule_of = np.zeros(len(ids), dtype=np.int64)
        for position, merchant in enumerate(ids):
            if merchant in hours or merchant in holidays:
                own_hours, own_holidays = hours.get(merchant, []), holidays.get(merchant, set())
                number = numbers.setdefault((frozenset(own_hours), frozenset(own_holidays)), len(numbers))
                if number == len(schedule_hours):
                    schedule_hours.append(own_hours)
                    schedule_holidays.append(own_holidays)
                schedule_of[position] = number
        return cls(timezone, schedule_of, schedule_hours, schedule_holidays)

    def open_at(self, positions: IntArray, instant: datetime) -> BoolArray:
        """``is_open`` of the merchants at ``positions`` at ``instant``, element for element."""
        schedules = self._schedule_of[positions]
        memo = self._memo_at(instant)
        unknown = schedules[memo[schedules] < 0]
        if unknown.size:  # the stretch's first requests: one call per schedule, then never again
            for number in set(unknown.tolist()):
                memo[number] = is_open(self._hours[number], self._holidays[number], self.timezone, instant)
        opened: BoolArray = memo[schedules] == 1
        return opened

    def _memo_at(self, instant: datetime) -> npt.NDArray[np.int8]:
        """The memo of the stretch holding ``instant`` (1 open, 0 closed, -1 not asked yet).

        Read and replaced as one tuple, so a request never fills another stretch's memo."""
        local = local_time(instant, self.timezone)
        stretch = (local.date(), bisect.bisect_right(self._boundaries, local.time()))
        key, memo = self._memo
        if key != stretch:
            memo = self._blank()
            self._memo = (stretch, memo)
        return memo

    def _blank(self) -> npt.NDArray[np.int8]:
        return np.full(len(self._hours), -1, dtype=np.int8)


@dataclass(frozen=True)
class CityIndex:
    """Live merchants of one city; positions index every column."""

    city: City
    ids: ObjectArray
    """``str`` merchant ids (``ids[positions].tolist()`` is the ranker's id list)."""
    uuids: ObjectArray
    names: ObjectArray
    folded_names: ObjectArray
    """``names`` case-folded once, for the text query."""
    categories: ObjectArray
    kinds: ObjectArray
    h3_r7: ObjectArray
    position: dict[str, int]
    """Position of each id: exclusions and favourites resolve once per request, not per candidate."""
    lat: FloatArray
    lng: FloatArray
    prep_s: FloatArray
    price_level: FloatArray
    eco_packaging: FloatArray
    """1.0 for merchants packing in eco packaging (the ranker's ``eco_match`` reads it)."""
    delivery_radius_m: FloatArray
    opening: OpeningHours
    everything: ProximityIndex
    by_category: dict[str, ProximityIndex]

    def positions_of(self, ids: Iterable[str]) -> IntArray:
        """Positions of those ``ids`` that are live merchants of this city (others are ignored)."""
        return np.fromiter((p for m in ids if (p := self.position.get(m)) is not None), dtype=np.int64)


@dataclass(frozen=True)
class Snapshot:
    cities: dict[str, CityIndex]
    all_cities: list[City]
    categories: frozenset[str]
    version: tuple[object, ...] = ()
    merchants: int = 0

    def city_at(self, lat: float, lng: float) -> City | None:
        return next((c for c in self.all_cities if c.contains(lat, lng)), None)


async def load_snapshot(pool: Pool) -> Snapshot:
    async with pool.connection() as conn:
        version = await repository.snapshot_version(conn)
        cities = [
            City(
                str(r["id"]),
                str(r["country"]).strip(),
                str(r["timezone"]),
                (r["min_lat"], r["min_lng"], r["max_lat"], r["max_lng"]),
            )
            for r in await repository.cities(conn)
        ]
        rows = await repository.live_merchants(conn)
        hour_rows = await repository.hours(conn)
        holiday_rows = await repository.holidays(conn)
    return await asyncio.to_thread(build_snapshot, cities, rows, hour_rows, holiday_rows, version)


def build_snapshot(
    cities: list[City],
    rows: list[dict[str, object]],
    hour_rows: list[dict[str, object]],
    holiday_rows: list[dict[str, object]],
    version: tuple[object, ...] = (),
) -> Snapshot:
    """Index ``rows`` (from ``repository.live_merchants``) per city and per category (CPU-bound)."""
    by_city: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        by_city[str(row["city_id"])].append(row)
    hours: dict[str, list[Interval]] = defaultdict(list)
    for h in hour_rows:
        hours[str(h["merchant_id"])].append(Interval(int(h["weekday"]), h["opens"], h["closes"]))  # type: ignore[call-overload, arg-type]
    holidays: dict[str, set[date]] = defaultdict(set)
    for d in holiday_rows:
        holidays[str(d["merchant_id"])].add(d["day"])  # type: ignore[arg-type]
    indexed: dict[str, CityIndex] = {}
    for city in cities:
        members = by_city.get(city.id, [])
        if members:
            indexed[city.id] = _city_index(city, members, hours, holidays)
    categories = frozenset(str(r["category"]) for r in rows)
    return Snapshot(indexed, cities, categories, version, len(rows))


def _city_index(
    city: City,
    rows: list[dict[str, object]],
    hours: dict[str, list[Interval]],
    holidays: dict[str, set[date]],
) -> CityIndex:
    ids = [str(r["id"]) for r in rows]
    lat = np.array([r["lat"] for r in rows], dtype=np.float64)
    lng = np.array([r["lng"] for r in rows], dtype=np.float64)
    categories = [str(r["category"]) for r in rows]
    positions: dict[str, list[int]] = defaultdict(list)
    for i, category in enumerate(categories):
        positions[category].append(i)
    everything = ProximityIndex(lat, lng, np.arange(len(rows), dtype=np.int64))
    by_category = {  # sharing the city's cell table: a category's build is its points' sort only
        category: ProximityIndex(
            lat[members], lng[members], np.array(members, dtype=np.int64), geometry_of=everything
        )
        for category, members in positions.items()
    }
    names = [str(r["name"]) for r in rows]
    return CityIndex(
        city=city,
        ids=_objects(ids),
        uuids=_objects([r["id"] for r in rows]),
        names=_objects(names),
        folded_names=_objects([n.casefold() for n in names]),
        categories=_objects(categories),
        kinds=_objects([str(r["kind"]) for r in rows]),
        h3_r7=_objects([str(r["h3_r7"]) for r in rows]),
        position={m: i for i, m in enumerate(ids)},
        lat=lat,
        lng=lng,
        prep_s=np.array([r["prep_time_min"] for r in rows], dtype=np.float64) * 60.0,
        price_level=np.array([r["price_level"] for r in rows], dtype=np.float64),
        eco_packaging=np.array([bool(r["eco_packaging"]) for r in rows], dtype=np.float64),
        delivery_radius_m=np.array([r["delivery_radius_m"] for r in rows], dtype=np.float64),
        opening=OpeningHours.of(city.timezone, ids, hours, holidays),
        everything=everything,
        by_category=by_category,
    )


def _objects(values: Sequence[object]) -> ObjectArray:
    """An object column: a request gathers its candidates' values in one step (``column[positions]``)."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


@dataclass
class IndexHolder:
    """The current snapshot, and the task that keeps it in step with PostgreSQL."""

    pool: Pool
    check_interval_s: float = 5.0
    snapshot: Snapshot = field(default_factory=lambda: Snapshot({}, [], frozenset()))

    async def reload(self) -> bool:
        """Load a new snapshot if the database changed since the current one; True if it did."""
        async with self.pool.connection() as conn:
            version = await repository.snapshot_version(conn)
        if version == self.snapshot.version and self.snapshot.all_cities:
            return False
        self.snapshot = await load_snapshot(self.pool)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                await self.reload()
            except Exception:  # keep serving the last snapshot; the next check retries
                log.exception("reloading the matching index failed")


@contextlib.asynccontextmanager
async def running_index(pool: Pool, check_interval_s: float = 5.0) -> AsyncIterator[IndexHolder]:
    """The index loaded once at start, then watched in the background until the app stops."""
    holder = IndexHolder(pool, check_interval_s)
    await holder.reload()
    task = asyncio.get_running_loop().create_task(holder._watch(), name="matching-index-watch")
    try:
        yield holder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
