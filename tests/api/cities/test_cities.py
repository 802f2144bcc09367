"""City lookup: the bbox prefilter plus the exact polygon decide which city serves a point."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.cities import service

Client = AsyncTestClient[Litestar]

KATHMANDU_DURBAR_SQUARE = (27.7044, 85.3074)
PUNE_SHANIWAR_WADA = (18.5196, 73.8553)
# Inside Kathmandu's bounding box but outside its polygon (the cut-off south-west corner).
KATHMANDU_BBOX_CORNER = (27.605, 85.205)
MUMBAI = (19.0760, 72.8777)


async def test_lists_cities_with_keyset_pages(client: Client) -> None:
    first = await client.get("/v1/cities", params={"limit": 1})
    assert first.status_code == 200
    body = first.json()
    assert [city["id"] for city in body["items"]] == ["kathmandu"]
    assert body["items"][0]["currency"] == "NPR"
    second = await client.get("/v1/cities", params={"limit": 1, "cursor": body["next_cursor"]})
    assert [city["id"] for city in second.json()["items"]] == ["pune"]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("point", "city_id"),
    [(KATHMANDU_DURBAR_SQUARE, "kathmandu"), (PUNE_SHANIWAR_WADA, "pune")],
)
async def test_resolves_a_point_to_its_city(client: Client, point: tuple[float, float], city_id: str) -> None:
    response = await client.get("/v1/cities/resolve", params={"lat": point[0], "lng": point[1]})
    assert response.status_code == 200
    assert response.json()["id"] == city_id


@pytest.mark.parametrize("point", [KATHMANDU_BBOX_CORNER, MUMBAI])
async def test_a_point_outside_every_polygon_is_404(client: Client, point: tuple[float, float]) -> None:
    response = await client.get("/v1/cities/resolve", params={"lat": point[0], "lng": point[1]})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "params",
    [
        {"lat": "91", "lng": "85.3"},
        {"lat": "27.7", "lng": "-181"},
        {"lat": "nan", "lng": "85.3"},
        {"lat": "27.7", "lng": "inf"},
        {"lat": "north", "lng": "85.3"},
        {"lat": "27.7"},
    ],
)
async def test_bad_coordinates_are_400_problems(client: Client, params: dict[str, str]) -> None:
    response = await client.get("/v1/cities/resolve", params=params)
    assert response.status_code == 400
    assert response.json()["status"] == 400


async def test_a_tampered_cursor_is_422(client: Client) -> None:
    response = await client.get("/v1/cities", params={"cursor": "W10"})  # base64 of "[]"
    assert response.status_code == 422


def test_boundary_edges_count_as_inside() -> None:
    square: dict[str, Any] = {
        "type": "Polygon",
        "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]],
    }
    assert service.boundary_covers(square, lat=0.0, lng=0.5)
    assert service.boundary_covers(square, lat=0.5, lng=0.5)
    assert not service.boundary_covers(square, lat=1.5, lng=0.5)
