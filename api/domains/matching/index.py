"""The in-memory index of live merchants that ``/v1/match`` searches (no SQL on the request path).

A snapshot per load: per city, one :class:`~nearx.proximity.ProximityIndex` over every live
merchant and one per category, with the columns ranking needs. :class:`IndexHolder` keeps the
current snapshot and a background task swaps in a new one when the database fingerprint
(``repository.snapshot_version``: merchants' updates, live count, hours, holidays) changes,
checked every ``check_interval_s`` (5 s): approval, suspension, the busy switch and hour
edits reach matching within that bound. The swap is one assignment; requests keep the
snapshot they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from api.domains.matching import repository
from api.domains.merchants.hours import Interval
from nearx.db import Pool
from nearx.proximity import ProximityIndex

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class City:
    id: str
    country: str
    timezone: str
    bbox: tuple[float, float, float, float]

    def contains(self, lat: float, lng: float) -> bool:
        min_lat, min_lng, max_lat, max_lng = self.bbox
        return min_lat <= lat <= max_lat and min_lng <= lng <= max_lng


@dataclass(frozen=True)
class CityIndex:
    """Live merchants of one city; positions index every column."""

    city: City
    ids: list[str]
    uuids: list[uuid.UUID]
    names: list[str]
    categories: list[str]
    kinds: list[str]
    h3_r7: list[str]
    lat: FloatArray
    lng: FloatArray
    prep_s: FloatArray
    price_level: FloatArray
    eco_packaging: FloatArray
    """1.0 for merchants packing in eco packaging (the ranker's ``eco_match`` reads it)."""
    delivery_radius_m: FloatArray
    hours: dict[int, list[Interval]]
    holidays: dict[int, set[date]]
    everything: ProximityIndex
    by_category: dict[str, ProximityIndex]


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
    return CityIndex(
        city=city,
        ids=ids,
        uuids=[r["id"] for r in rows],  # type: ignore[misc]
        names=[str(r["name"]) for r in rows],
        categories=categories,
        kinds=[str(r["kind"]) for r in rows],
        h3_r7=[str(r["h3_r7"]) for r in rows],
        lat=lat,
        lng=lng,
        prep_s=np.array([r["prep_time_min"] for r in rows], dtype=np.float64) * 60.0,
        price_level=np.array([r["price_level"] for r in rows], dtype=np.float64),
        eco_packaging=np.array([bool(r["eco_packaging"]) for r in rows], dtype=np.float64),
        delivery_radius_m=np.array([r["delivery_radius_m"] for r in rows], dtype=np.float64),
        hours={i: hours[m] for i, m in enumerate(ids) if m in hours},
        holidays={i: holidays[m] for i, m in enumerate(ids) if m in holidays},
        everything=everything,
        by_category=by_category,
    )


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
