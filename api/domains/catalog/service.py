"""Catalog rules: who may list what, in which currency, and who may see it.

Prices are integer minor units in the currency of the merchant's city (taken
from the city, never from the client). Allergens and dietary tags come from
the controlled vocabularies in ``nearx.dietary``; the database repeats them as
CHECK constraints. A product is visible only while its merchant is approved.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from api.domains.catalog import repository as repo
from api.domains.catalog.schemas import (
    ArAssetOut,
    Product,
    ProductInput,
    ServiceInput,
    ServiceListing,
    StockLevel,
    Variant,
)
from api.domains.inventory import repository as inventory_repo
from api.domains.merchants import service as merchants
from api.errors import Conflict, InvalidInput, NotFound
from api.security.principal import Principal
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event


def _product_out(row: dict[str, Any], variants: list[dict[str, Any]]) -> Product:
    ar = (
        ArAssetOut(model_url=row["ar_model_url"], format=row["ar_format"], scale=row["ar_scale"])
        if row["ar_model_url"]
        else None
    )
    return Product(
        id=row["id"],
        merchant_id=row["merchant_id"],
        city_id=row["city_id"],
        name=row["name"],
        category=row["category"],
        description=row["description"],
        tax_class=row["tax_class"],
        allergens=list(row["allergens"]),
        dietary_tags=list(row["dietary_tags"]),
        images=list(row["images"]),
        try_before_buy=row["try_before_buy"],
        ar=ar,
        variants=[
            Variant(
                id=v["id"],
                sku=v["sku"],
                name=v["name"],
                price_minor=v["price_minor"],
                currency=v["currency"].strip(),
                available=v["available"],
            )
            for v in variants
        ],
        created_at=row["created_at"],
    )


async def create_product(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, body: ProductInput
) -> Product:
    skus = [variant.sku for variant in body.variants]
    if len(set(skus)) != len(skus):
        raise InvalidInput("each variant needs its own sku")
    if len(set(body.allergens)) != len(body.allergens) or len(set(body.dietary_tags)) != len(
        body.dietary_tags
    ):
        raise InvalidInput("allergens and dietary tags must not repeat")
    async with conn.transaction():
        merchant = await merchants.get_row(conn, merchant_id, for_update=True)
        await merchants.require_staff(conn, merchant_id, principal, merchants.MANAGERS)
        if merchant["kind"] != "merchant":
            raise Conflict("providers list services, not products")
        taken = await repo.sku_taken(conn, merchant_id, skus)
        if taken:
            raise Conflict(f"sku already in use: {', '.join(sorted(taken))}")
        currency = await repo.city_currency(conn, merchant["city_id"])
        product_id = new_id()
        await repo.insert_product(
            conn,
            {
                "id": product_id,
                "merchant_id": merchant_id,
                "city_id": merchant["city_id"],
                "name": body.name,
                "description": body.description,
                "category": body.category,
                "tax_class": body.tax_class,
                "allergens": [a.value for a in body.allergens],
                "dietary_tags": [d.value for d in body.dietary_tags],
                "images": list(body.images),
                "try_before_buy": body.try_before_buy,
                "ar_model_url": body.ar.model_url if body.ar else None,
                "ar_format": body.ar.format if body.ar else None,
                "ar_scale": body.ar.scale if body.ar else None,
            },
        )
        for variant in body.variants:
            variant_id = new_id()
            await repo.insert_variant(
                conn,
                {
                    "id": variant_id,
                    "product_id": product_id,
                    "merchant_id": merchant_id,
                    "city_id": merchant["city_id"],
                    "sku": variant.sku,
                    "name": variant.name,
                    "price_minor": variant.price_minor,
                    "currency": currency,
                },
            )
            await inventory_repo.create(
                conn,
                variant_id=variant_id,
                merchant_id=merchant_id,
                city_id=merchant["city_id"],
                on_hand=variant.initial_stock,
            )
        await append_event(
            conn,
            event_type="product.created",
            aggregate_type="product",
            aggregate_id=product_id,
            payload={"product_id": str(product_id), "merchant_id": str(merchant_id), "name": body.name},
            city_id=merchant["city_id"],
        )
        row = await repo.get_product(conn, product_id)
        assert row is not None
        variants = await repo.variants_of(conn, [product_id])
    return _product_out(row, variants)


async def get_product(conn: Connection, principal: Principal, product_id: uuid.UUID) -> Product:
    row = await repo.get_product(conn, product_id)
    if row is None:
        raise NotFound(f"product {product_id} was not found")
    try:
        await merchants.visible_row(conn, principal, row["merchant_id"])
    except NotFound as exc:
        raise NotFound(f"product {product_id} was not found") from exc
    return _product_out(row, await repo.variants_of(conn, [product_id]))


async def list_products(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Product]:
    await merchants.visible_row(conn, principal, merchant_id)
    rows = await repo.list_products(conn, merchant_id, after=after, limit=limit)
    by_product: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for variant in await repo.variants_of(conn, [row["id"] for row in rows]):
        by_product[variant["product_id"]].append(variant)
    return [_product_out(row, by_product[row["id"]]) for row in rows]


def _service_out(row: dict[str, Any]) -> ServiceListing:
    return ServiceListing(
        id=row["id"],
        merchant_id=row["merchant_id"],
        name=row["name"],
        description=row["description"],
        duration_min=row["duration_min"],
        price_minor=row["price_minor"],
        deposit_minor=row["deposit_minor"],
        currency=row["currency"].strip(),
        required_skills=list(row["required_skills"]),
    )


async def create_service(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, body: ServiceInput
) -> ServiceListing:
    if body.deposit_minor > body.price_minor:
        raise InvalidInput("the deposit cannot exceed the price")
    async with conn.transaction():
        merchant = await merchants.get_row(conn, merchant_id, for_update=True)
        await merchants.require_staff(conn, merchant_id, principal, merchants.MANAGERS)
        if merchant["kind"] != "provider":
            raise Conflict("only service providers list services")
        service_id = new_id()
        await repo.insert_service(
            conn,
            {
                "id": service_id,
                "merchant_id": merchant_id,
                "city_id": merchant["city_id"],
                "name": body.name,
                "description": body.description,
                "duration_min": body.duration_min,
                "price_minor": body.price_minor,
                "deposit_minor": body.deposit_minor,
                "currency": await repo.city_currency(conn, merchant["city_id"]),
                "required_skills": list(body.required_skills),
            },
        )
        await append_event(
            conn,
            event_type="service.created",
            aggregate_type="service",
            aggregate_id=service_id,
            payload={"service_id": str(service_id), "merchant_id": str(merchant_id)},
            city_id=merchant["city_id"],
        )
        row = await repo.get_service(conn, service_id)
        assert row is not None
    return _service_out(row)


async def list_services(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID
) -> list[ServiceListing]:
    await merchants.visible_row(conn, principal, merchant_id)
    return [_service_out(row) for row in await repo.list_services(conn, merchant_id)]


async def set_stock(
    conn: Connection, principal: Principal, variant_id: uuid.UUID, on_hand: int
) -> StockLevel:
    """A stock count from the shop floor; it may not drop below units already promised to orders."""
    async with conn.transaction():
        variant = await repo.get_variant(conn, variant_id)
        if variant is None:
            raise NotFound(f"variant {variant_id} was not found")
        await merchants.require_staff(conn, variant["merchant_id"], principal, merchants.ANY_STAFF)
        row = await inventory_repo.set_on_hand(conn, variant_id, on_hand)
        if row is None:
            raise Conflict("on hand cannot drop below the units reserved by open orders")
        await append_event(
            conn,
            event_type="inventory.counted",
            aggregate_type="inventory",
            aggregate_id=variant_id,
            payload={"variant_id": str(variant_id), "on_hand": on_hand, "reserved": row["reserved"]},
            city_id=row["city_id"],
        )
    return StockLevel(
        variant_id=variant_id,
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        available=row["on_hand"] - row["reserved"],
    )
