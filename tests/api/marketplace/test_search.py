"""Catalog search: ranking, facets, distance via H3 cells, open now, pagination."""

from __future__ import annotations

import math
import random
from typing import Any

import h3
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.catalog.search import covering_cells
from api.security.principal import Role
from nearx.geo import haversine_m
from tests.api.marketplace.conftest import KTM, MakeMerchant, MakeProduct, MakeUser


def _variant(price: int) -> list[dict[str, Any]]:
    return [{"sku": f"s{price}", "name": "one", "price_minor": price, "initial_stock": 5}]


@pytest.fixture
async def catalog(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
) -> dict[str, Any]:
    near_owner, near = await make_merchant(name="Near Kitchen")
    far_owner, far = await make_merchant(name="Far Kitchen", lat=27.75, lng=85.45)  # ~14 km away
    products = {
        "chicken": await make_product(
            near_owner, near, name="Chicken momo", allergens=["gluten"], variants=_variant(30_000)
        ),
        "veg": await make_product(
            near_owner,
            near,
            name="Veg momo",
            allergens=["gluten"],
            dietary_tags=["vegetarian", "vegan"],
            variants=_variant(25_000),
        ),
        "paneer": await make_product(
            near_owner,
            near,
            name="Paneer tikka",
            category="grill",
            allergens=["milk"],
            dietary_tags=["vegetarian"],
            variants=_variant(40_000),
        ),
        "buff": await make_product(
            far_owner, far, name="Buff momo", allergens=["gluten"], variants=_variant(20_000)
        ),
    }
    pending_owner = await make_user(Role.MERCHANT)
    pending = (
        await client.post(
            "/v1/merchants",
            json={"kind": "merchant", "category": "food", "name": "P", **KTM},
            headers=pending_owner.headers,
        )
    ).json()
    await make_product(pending_owner, pending, name="Secret momo", variants=_variant(1_000))
    return {
        "near": near,
        "near_owner": near_owner,
        "far": far,
        "ids": {k: v["id"] for k, v in products.items()},
    }


async def _search(client: AsyncTestClient[Litestar], headers: dict[str, str], **params: Any) -> Any:
    response = await client.get("/v1/catalog/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_full_text_ranking_hides_unapproved_merchants(
    client: AsyncTestClient[Litestar], catalog: dict[str, Any], make_user: MakeUser
) -> None:
    who = (await make_user()).headers
    ids = catalog["ids"]
    page = await _search(client, who, q="momo")
    assert {hit["product_id"] for hit in page["items"]} == {ids["chicken"], ids["veg"], ids["buff"]}
    best = await _search(client, who, q="veg momo")
    assert [hit["product_id"] for hit in best["items"]] == [ids["veg"]]
    assert best["items"][0]["rank"] > 0


async def test_distance_filter_and_sorting(
    client: AsyncTestClient[Litestar], catalog: dict[str, Any], make_user: MakeUser
) -> None:
    who = (await make_user()).headers
    ids = catalog["ids"]
    near = await _search(client, who, q="momo", lat=27.7005, lng=85.3205, radius_m=1_000)
    assert {hit["product_id"] for hit in near["items"]} == {ids["chicken"], ids["veg"]}
    assert all(hit["distance_m"] < 1_000 for hit in near["items"])
    wide = await _search(client, who, lat=27.7005, lng=85.3205, radius_m=20_000)
    assert len(wide["items"]) == 4
    distances = [hit["distance_m"] for hit in wide["items"]]
    assert distances == sorted(distances)  # no text query: equal rank, nearest first
    assert wide["items"][-1]["product_id"] == ids["buff"]


async def test_facets_and_filters(
    client: AsyncTestClient[Litestar], catalog: dict[str, Any], make_user: MakeUser
) -> None:
    who = (await make_user()).headers
    ids = catalog["ids"]
    everything = await _search(client, who)
    assert everything["facets"]["category"] == [{"value": "food", "count": 3}, {"value": "grill", "count": 1}]
    assert {"value": "vegetarian", "count": 2} in everything["facets"]["dietary"]
    assert (everything["facets"]["price_min_minor"], everything["facets"]["price_max_minor"]) == (
        20_000,
        40_000,
    )
    veg = await _search(client, who, dietary=["vegetarian"])
    assert {h["product_id"] for h in veg["items"]} == {ids["veg"], ids["paneer"]}
    no_milk = await _search(client, who, dietary=["vegetarian"], allergen_free=["milk"])
    assert [h["product_id"] for h in no_milk["items"]] == [ids["veg"]]
    no_gluten = await _search(client, who, allergen_free=["gluten"])
    assert [h["product_id"] for h in no_gluten["items"]] == [ids["paneer"]]
    cheap = await _search(client, who, min_price=21_000, max_price=30_000)
    assert {h["product_id"] for h in cheap["items"]} == {ids["chicken"], ids["veg"]}
    grill = await _search(client, who, category="grill")
    assert [h["product_id"] for h in grill["items"]] == [ids["paneer"]]


async def test_open_now_uses_local_hours(
    client: AsyncTestClient[Litestar], catalog: dict[str, Any], make_user: MakeUser
) -> None:
    who = (await make_user()).headers
    closed = {"hours": [{"weekday": d, "opens": "00:00:00", "closes": "00:00:01"} for d in range(7)]}
    await client.put(
        f"/v1/merchants/{catalog['near']['id']}/hours", json=closed, headers=catalog["near_owner"].headers
    )
    open_now = await _search(client, who, open_now=True)
    assert [h["product_id"] for h in open_now["items"]] == [
        catalog["ids"]["buff"]
    ]  # no hours set: always open
    assert len((await _search(client, who))["items"]) == 4


async def test_cursor_pages_through_every_hit_once(
    client: AsyncTestClient[Litestar], catalog: dict[str, Any], make_user: MakeUser
) -> None:
    who = (await make_user()).headers
    seen: list[str] = []
    params: dict[str, Any] = {"q": "momo", "lat": 27.7, "lng": 85.32, "radius_m": 20_000, "limit": 1}
    while True:
        page = await _search(client, who, **params)
        seen += [hit["product_id"] for hit in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(seen) == sorted({catalog["ids"]["chicken"], catalog["ids"]["veg"], catalog["ids"]["buff"]})
    assert len(seen) == 3


BAD_SEARCHES = [
    ({"lat": 27.7}, 422),
    ({"allergen_free": ["pollen"]}, 400),
    ({"radius_m": 10}, 400),
    ({"min_price": 5, "max_price": 1}, 422),
    ({"cursor": "garbage"}, 422),
]


async def test_bad_search_input_is_a_problem(client: AsyncTestClient[Litestar], make_user: MakeUser) -> None:
    for params, status in BAD_SEARCHES:
        response = await client.get("/v1/catalog/search", params=params, headers=(await make_user()).headers)
        assert response.status_code == status, response.text


@pytest.mark.parametrize("radius_m", [300, 1_500, 5_000, 20_000])
def test_covering_cells_contain_every_point_within_the_radius(radius_m: int) -> None:
    rng = random.Random(radius_m)
    lat0, lng0 = 27.7, 85.32
    resolution, cells = covering_cells(lat0, lng0, radius_m)
    cell_set = set(cells)
    for _ in range(2_000):
        bearing, distance = rng.uniform(0, 2 * math.pi), radius_m * math.sqrt(rng.random())
        lat = lat0 + math.degrees(distance * math.cos(bearing) / 6_371_008.8)
        lng = lng0 + math.degrees(distance * math.sin(bearing) / (6_371_008.8 * math.cos(math.radians(lat0))))
        if haversine_m(lat0, lng0, lat, lng) <= radius_m:
            assert h3.latlng_to_cell(lat, lng, resolution) in cell_set
