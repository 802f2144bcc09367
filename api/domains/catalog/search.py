"""Plain catalog search: full text with ranking, facets, and a distance filter via H3 cells.

Distance: the query point's H3 cell and a k-ring around it pre-select the
merchants by their stored cell (an indexed equality, no geometry extension
needed), then the exact haversine distance filters and sorts. Small radii use
resolution 9 (~200 m edges), larger ones resolution 7 (~1.4 km). The ring is
sized so every point within the radius falls in it: a cell whose centre is
within ``radius + 2 edges`` of the origin centre lies within ``k`` rings when
``(k + 1) * 1.5 * edge`` exceeds that distance; one ring of margin absorbs
H3's cell-size distortion.

The learned ranking arrives with the serving issue; this is the baseline.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import h3

from api.domains.catalog import repository as repo
from api.domains.catalog.schemas import FacetCount, SearchFacets, SearchHit, SearchPage
from api.errors import InvalidInput
from api.pagination import decode_cursor, encode_cursor
from nearx.db import Connection
from nearx.geo import validate_coordinates

FINE_RADIUS_LIMIT_M = 1_500
"""Up to this radius the ring uses resolution 9 cells; beyond it resolution 7."""


def covering_cells(lat: float, lng: float, radius_m: int) -> tuple[int, list[str]]:
    """The H3 resolution and cells that surely contain every point within ``radius_m``."""
    validate_coordinates(lat, lng)
    resolution = 9 if radius_m <= FINE_RADIUS_LIMIT_M else 7
    edge = h3.average_hexagon_edge_length(resolution, unit="m")
    k = math.ceil((radius_m + 2 * edge) / (1.5 * edge)) + 1
    origin = h3.latlng_to_cell(lat, lng, resolution)
    return resolution, sorted(h3.grid_disk(origin, k))


def _cursor_key(cursor: str) -> list[Any]:
    key = decode_cursor(cursor)
    if len(key) != 3 or not isinstance(key[1], int):
        raise InvalidInput("cursor is not valid")
    try:
        return [Decimal(str(key[0])), key[1], uuid.UUID(str(key[2]))]
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise InvalidInput("cursor is not valid") from exc


async def search(
    conn: Connection,
    *,
    q: str | None,
    lat: float | None,
    lng: float | None,
    radius_m: int,
    city_id: str | None,
    category: str | None,
    dietary: list[str],
    allergen_free: list[str],
    min_price: int | None,
    max_price: int | None,
    open_now: bool,
    now: datetime,
    cursor: str | None,
    limit: int,
) -> SearchPage:
    if (lat is None) != (lng is None):
        raise InvalidInput("give both lat and lng, or neither")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidInput("min_price is above max_price")
    cells7 = cells9 = None
    if lat is not None and lng is not None:
        resolution, cells = covering_cells(lat, lng, radius_m)
        cells7, cells9 = (cells, None) if resolution == 7 else (None, cells)
    params: dict[str, Any] = {
        "q": q.strip() if q and q.strip() else None,
        "lat": lat,
        "lng": lng,
        "city": city_id,
        "category": category,
        "dietary": dietary,
        "allergen_free": allergen_free,
        "min_price": min_price,
        "max_price": max_price,
        "cells7": cells7,
        "cells9": cells9,
        "open_now": open_now,
        "now": now,
    }
    radius = radius_m if lat is not None else None
    after = _cursor_key(cursor) if cursor else None
    rows = await repo.search(conn, params, radius_m=radius, after=after, limit=limit)
    facets = await repo.search_facets(conn, params, radius_m=radius)
    items = [
        SearchHit(
            product_id=row["product_id"],
            name=row["name"],
            category=row["category"],
            merchant_id=row["merchant_id"],
            merchant_name=row["merchant_name"],
            min_price_minor=row["min_price"],
            currency=row["currency"].strip(),
            allergens=list(row["allergens"]),
            dietary_tags=list(row["dietary_tags"]),
            try_before_buy=row["try_before_buy"],
            rank=float(row["rank"]),
            distance_m=row["distance_m"],
        )
        for row in rows
    ]
    last = rows[-1] if len(rows) == limit else None
    return SearchPage(
        items=items,
        facets=SearchFacets(
            category=[FacetCount(value=v, count=n) for v, n in facets["categories"]],
            dietary=[FacetCount(value=v, count=n) for v, n in facets["dietary"]],
            price_min_minor=facets["price_min"],
            price_max_minor=facets["price_max"],
        ),
        next_cursor=encode_cursor(str(-last["rank"]), last["distance_m"] or 0, str(last["product_id"]))
        if last
        else None,
    )
