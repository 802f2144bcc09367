"""``/v1/cities``: public reference data, so an app can show where NEARX works before sign-in."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from api.domains.cities import service
from api.domains.cities.schemas import City
from api.errors import NotFound
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from nearx.db import Connection

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size")]
LatitudeQuery = Annotated[float, QueryParameter(ge=-90.0, le=90.0, description="WGS-84 latitude in degrees")]
LongitudeQuery = Annotated[
    float, QueryParameter(ge=-180.0, le=180.0, description="WGS-84 longitude in degrees")
]


class CitiesController(Controller):
    path = "/v1/cities"
    tags = ["cities"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    opt = {"public": True}  # noqa: RUF012

    @get("/", operation_id="listCities", summary="List the cities NEARX serves")
    async def list_cities(
        self,
        conn: NamedDependency[Connection],
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[City]:
        cities, next_cursor = await service.list_cities(conn, cursor=cursor, limit=limit)
        return Page(items=cities, next_cursor=next_cursor)

    @get("/resolve", operation_id="resolveCity", summary="The city that serves a point")
    async def resolve_city(
        self, conn: NamedDependency[Connection], lat: LatitudeQuery, lng: LongitudeQuery
    ) -> City:
        """404 when no city serves the point: the app then tells the user NEARX is not there yet."""
        city = await service.resolve(conn, lat=lat, lng=lng)
        if city is None:
            raise NotFound(f"no NEARX city serves the point ({lat}, {lng})")
        return city
