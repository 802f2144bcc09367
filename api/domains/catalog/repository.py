"""All SQL of the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from nearx.db import Connection


async def insert_product(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO products (id, merchant_id, city_id, name, description, category, tax_class, allergens,
                              dietary_tags, images, try_before_buy, ar_model_url, ar_format, ar_scale)
        VALUES (%(id)s, %(merchant_id)s, %(city_id)s, %(name)s, %(description)s, %(category)s, %(tax_class)s,
                %(allergens)s, %(dietary_tags)s, %(images)s, %(try_before_buy)s, %(ar_model_url)s,
                %(ar_format)s, %(ar_scale)s)
        """,
        row,
    )


async def insert_variant(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO product_variants (id, product_id, merchant_id, city_id, sku, name, price_minor, currency)
        VALUES (%(id)s, %(product_id)s, %(merchant_id)s, %(city_id)s, %(sku)s, %(name)s, %(price_minor)s,
                %(currency)s)
        """,
        row,
    )


async def sku_taken(conn: Connection, merchant_id: uuid.UUID, skus: Sequence[str]) -> list[str]:
    rows = await (
        await conn.execute(
            "SELECT sku FROM product_variants WHERE merchant_id = %s AND sku = ANY(%s)",
            (merchant_id, list(skus)),
        )
    ).fetchall()
    return [row["sku"] for row in rows]


async def get_product(conn: Connection, product_id: uuid.UUID) -> dict[str, Any] | None:
    return await (await conn.execute("SELECT * FROM products WHERE id = %s", (product_id,))).fetchone()


async def list_products(
    conn: Connection, merchant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT * FROM products
            WHERE merchant_id = %(m)s AND active AND (%(after)s::uuid IS NULL OR id > %(after)s)
            ORDER BY id LIMIT %(limit)s
            """,
            {"m": merchant_id, "after": after, "limit": limit},
        )
    ).fetchall()


async def variants_of(conn: Connection, product_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT v.*, i.on_hand - i.reserved AS available
            FROM product_variants v JOIN inventory i ON i.variant_id = v.id
            WHERE v.product_id = ANY(%s) AND v.active
            ORDER BY v.product_id, v.sku
            """,
            (list(product_ids),),
        )
    ).fetchall()


async def variants_for_checkout(conn: Connection, variant_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Everything pricing needs about each variant: product, tax rate, merchant."""
    return await (
        await conn.execute(
            """
            SELECT v.id AS variant_id, v.name AS variant_name, v.sku, v.price_minor, v.currency,
                   p.id AS product_id, p.name AS product_name, p.tax_class, p.try_before_buy,
                   t.rate_bp AS tax_rate_bp, v.merchant_id
            FROM product_variants v
            JOIN products p ON p.id = v.product_id
            JOIN tax_rates t ON t.city_id = p.city_id AND t.tax_class = p.tax_class
            WHERE v.id = ANY(%s) AND v.active AND p.active
            """,
            (list(variant_ids),),
        )
    ).fetchall()


async def get_variant(conn: Connection, variant_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM product_variants WHERE id = %s", (variant_id,))
    ).fetchone()


async def insert_service(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO service_listings (id, merchant_id, city_id, name, description, duration_min, price_minor,
                                      deposit_minor, currency, required_skills)
        VALUES (%(id)s, %(merchant_id)s, %(city_id)s, %(name)s, %(description)s, %(duration_min)s,
                %(price_minor)s, %(deposit_minor)s, %(currency)s, %(required_skills)s)
        """,
        row,
    )


async def get_service(conn: Connection, service_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM service_listings WHERE id = %s", (service_id,))
    ).fetchone()


async def list_services(conn: Connection, merchant_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM service_listings WHERE merchant_id = %s AND active ORDER BY id", (merchant_id,)
        )
    ).fetchall()


async def city_currency(conn: Connection, city_id: str) -> str:
    row = await (await conn.execute("SELECT currency FROM cities WHERE id = %s", (city_id,))).fetchone()
    assert row is not None
    return str(row["currency"]).strip()
