"""Products, variants, labels, service listings and stock counts."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Role
from nearx.dietary import Allergen, DietaryTag
from tests.api.marketplace.conftest import KTM, MakeMerchant, MakeProduct, MakeUser


async def _count(conn: Any, table: str) -> int:
    row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
    return int(row["n"])


async def test_product_with_variants_labels_and_ar(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser
) -> None:
    owner, merchant = await make_merchant()
    body = {
        "name": "Paneer tikka",
        "category": "restaurant_food",
        "description": "smoky cottage cheese",
        "tax_class": "reduced",
        "allergens": ["milk", "mustard"],
        "dietary_tags": ["vegetarian"],
        "images": ["https://cdn.example/p.jpg"],
        "try_before_buy": False,
        "ar": {"model_url": "https://cdn.example/p.glb", "format": "glb", "scale": 0.5},
        "variants": [
            {"sku": "pt-half", "name": "half", "price_minor": 30_000, "initial_stock": 5},
            {"sku": "pt-full", "name": "full", "price_minor": 55_000, "initial_stock": 2},
        ],
    }
    response = await client.post(f"/v1/merchants/{merchant['id']}/products", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    product = response.json()
    assert product["city_id"] == "kathmandu"
    assert {v["sku"]: (v["currency"], v["available"]) for v in product["variants"]} == {
        "pt-half": ("NPR", 5),
        "pt-full": ("NPR", 2),
    }
    assert product["ar"] == {"model_url": "https://cdn.example/p.glb", "format": "glb", "scale": 0.5}
    customer = await make_user()
    seen = await client.get(f"/v1/products/{product['id']}", headers=customer.headers)
    assert seen.json()["allergens"] == ["milk", "mustard"]
    page = await client.get(f"/v1/merchants/{merchant['id']}/products", headers=customer.headers)
    assert [p["id"] for p in page.json()["items"]] == [product["id"]]


BAD_PRODUCTS = [
    {"allergens": ["pollen"]},  # not one of the EU 14
    {"dietary_tags": ["carnivore"]},
    {"variants": []},
    {"variants": [{"sku": "a", "name": "a", "price_minor": -1}]},
    {"images": ["http://insecure.example/x.jpg"]},
    {"ar": {"model_url": "https://x.example/m.obj", "format": "obj"}},
    {"price": 5},  # unknown field
]


async def test_bad_product_input_is_refused_and_writes_nothing(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, conn: Any
) -> None:
    owner, merchant = await make_merchant()
    for change in BAD_PRODUCTS:
        body = {
            "name": "X",
            "category": "food",
            "variants": [{"sku": "a", "name": "a", "price_minor": 1}],
            **change,
        }
        response = await client.post(
            f"/v1/merchants/{merchant['id']}/products", json=body, headers=owner.headers
        )
        assert 400 <= response.status_code < 500, change
        assert await _count(conn, "products") == 0
        assert await _count(conn, "product_variants") == 0


async def test_vocabularies_in_sql_match_the_kernel(conn: Any) -> None:
    """The CHECK constraints repeat nearx.dietary word for word: no value missing, none extra."""
    for column, vocabulary in (("allergens", Allergen), ("dietary_tags", DietaryTag)):
        row = await (
            await conn.execute(
                "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
                "WHERE conrelid = 'products'::regclass AND pg_get_constraintdef(oid) LIKE %s",
                (f"%({column} <@%",),
            )
        ).fetchone()
        in_sql = set(re.findall(r"'([a-z_]+)'::text", row["def"]))
        assert in_sql == {value.value for value in vocabulary}
    assert len(Allergen) == 14


async def test_pending_merchant_catalog_is_hidden_and_providers_list_services(
    client: AsyncTestClient[Litestar], make_user: MakeUser, make_merchant: MakeMerchant
) -> None:
    applicant = await make_user(Role.MERCHANT)
    pending = (
        await client.post(
            "/v1/merchants",
            json={"kind": "merchant", "category": "bakery", "name": "B", **KTM},
            headers=applicant.headers,
        )
    ).json()
    body = {
        "name": "Bread",
        "category": "bakery",
        "variants": [{"sku": "b", "name": "loaf", "price_minor": 100}],
    }
    product = (
        await client.post(f"/v1/merchants/{pending['id']}/products", json=body, headers=applicant.headers)
    ).json()
    customer = await make_user()
    assert (await client.get(f"/v1/products/{product['id']}", headers=customer.headers)).status_code == 404

    provider_owner, provider = await make_merchant(kind="provider", category="plumber")
    service_body = {
        "name": "Fix a tap",
        "duration_min": 60,
        "price_minor": 150_000,
        "deposit_minor": 20_000,
        "required_skills": ["plumbing"],
    }
    created = await client.post(
        f"/v1/merchants/{provider['id']}/services", json=service_body, headers=provider_owner.headers
    )
    assert created.status_code == 201
    assert created.json()["currency"] == "NPR"
    too_much = {**service_body, "deposit_minor": 200_000}
    assert (
        await client.post(
            f"/v1/merchants/{provider['id']}/services", json=too_much, headers=provider_owner.headers
        )
    ).status_code == 422
    assert (
        await client.post(
            f"/v1/merchants/{provider['id']}/products", json=body, headers=provider_owner.headers
        )
    ).status_code == 409
    listed = await client.get(f"/v1/merchants/{provider['id']}/services", headers=customer.headers)
    assert [s["name"] for s in listed.json()] == ["Fix a tap"]


async def test_stock_count_and_database_guards(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
) -> None:
    owner, merchant = await make_merchant()
    product = await make_product(owner, merchant)
    variant_id = product["variants"][0]["id"]
    stranger = await make_user(Role.MERCHANT)
    assert (
        await client.put(f"/v1/variants/{variant_id}/stock", json={"on_hand": 3}, headers=stranger.headers)
    ).status_code == 403
    await conn.execute("UPDATE inventory SET reserved = 4 WHERE variant_id = %s", (variant_id,))
    below = await client.put(f"/v1/variants/{variant_id}/stock", json={"on_hand": 3}, headers=owner.headers)
    assert below.status_code == 409
    ok = await client.put(f"/v1/variants/{variant_id}/stock", json={"on_hand": 4}, headers=owner.headers)
    assert ok.json() == {"variant_id": variant_id, "on_hand": 4, "reserved": 4, "available": 0}
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute(
            "UPDATE inventory SET reserved = reserved + 1 WHERE variant_id = %s", (variant_id,)
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute(
            "UPDATE inventory SET on_hand = -1, reserved = 0 WHERE variant_id = %s", (variant_id,)
        )
