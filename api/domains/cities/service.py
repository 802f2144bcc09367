"""Which city serves a point: a bounding-box prefilter in SQL, then the exact polygon test.

Boundaries are GeoJSON polygons stored as data, so adding a city is a row, not
code. The exact test uses shapely (GEOS) because the embedded PostgreSQL has
no PostGIS; the SQL prefilter keeps the Python work to the one or two cities
whose box holds the point. A point on a boundary line counts as inside.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import shape

from api.domains.cities import repository
from api.domains.cities.schemas import City
from api.errors import InvalidInput
from api.pagination import decode_cursor, encode_cursor
from nearx.db import Connection
from nearx.geo import InvalidCoordinates, validate_coordinates


def _to_city(row: dict[str, Any]) -> City:
    return City(
        id=row["id"],
        name=row["name"],
        country=row["country"],
        currency=row["currency"],
        timezone=row["timezone"],
        bbox=(row["min_lng"], row["min_lat"], row["max_lng"], row["max_lat"]),
        boundary=row["boundary"],
    )


def boundary_covers(boundary: dict[str, Any], *, lat: float, lng: float) -> bool:
    """True when the GeoJSON ``boundary`` ([lng, lat] order) contains or touches the point."""
    return bool(shape(boundary).covers(shapely.Point(lng, lat)))


async def resolve(conn: Connection, *, lat: float, lng: float) -> City | None:
    """The city whose boundary holds the point, or ``None`` outside every city; a non-point is a 422.

    Should boundaries ever overlap, the lowest city id wins, so the answer is stable.
    """
    try:
        validate_coordinates(lat, lng)
    except InvalidCoordinates as exc:
        raise InvalidInput(str(exc)) from exc
    for row in await repository.containing_bbox(conn, lat=lat, lng=lng):
        if boundary_covers(row["boundary"], lat=lat, lng=lng):
            return _to_city(row)
    return None


def _after_id(cursor: str) -> str:
    key = decode_cursor(cursor)
    if len(key) != 1 or not isinstance(key[0], str):
        raise InvalidInput("cursor is not valid")
    return key[0]


async def list_cities(conn: Connection, *, cursor: str | None, limit: int) -> tuple[list[City], str | None]:
    """One page of cities by id, and the cursor of the next page."""
    after = _after_id(cursor) if cursor else None
    rows = await repository.list_after(conn, after_id=after, limit=limit + 1)
    cities = [_to_city(row) for row in rows[:limit]]
    next_cursor = encode_cursor(cities[-1].id) if len(rows) > limit else None
    return cities, next_cursor
