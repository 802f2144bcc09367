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


_SEARCH_CTE = """
WITH hits AS (
    SELECT p.id AS product_id, p.name, p.category, p.allergens, p.dietary_tags, p.try_before_buy,
           m.id AS merchant_id, m.name AS merchant_name,
           prices.min_price, prices.currency,
           round(CASE WHEN %(q)s::text IS NULL THEN 0
                      ELSE ts_rank_cd(p.search, websearch_to_tsquery('simple', %(q)s))
                 END::numeric, 6) AS rank,
           CASE WHEN %(lat)s::float8 IS NULL THEN NULL ELSE round(2 * 6371008.8 * asin(least(1, sqrt(
               power(sin(radians(m.lat - %(lat)s) / 2), 2)
               + cos(radians(%(lat)s)) * cos(radians(m.lat)) * power(sin(radians(m.lng - %(lng)s) / 2), 2)))))
           END::int AS distance_m
    FROM products p
    JOIN merchants m ON m.id = p.merchant_id
    JOIN cities c ON c.id = m.city_id
    JOIN LATERAL (
        SELECT min(v.price_minor) AS min_price, min(v.currency) AS currency
        FROM product_variants v WHERE v.product_id = p.id AND v.active
          AND (%(min_price)s::bigint IS NULL OR v.price_minor >= %(min_price)s)
          AND (%(max_price)s::bigint IS NULL OR v.price_minor <= %(max_price)s)
    ) prices ON prices.min_price IS NOT NULL
    WHERE p.active AND m.status = 'approved' AND NOT m.paused
      AND (%(q)s::text IS NULL OR p.search @@ websearch_to_tsquery('simple', %(q)s))
      AND (%(city)s::text IS NULL OR p.city_id = %(city)s)
      AND (%(category)s::text IS NULL OR p.category = %(category)s)
      AND p.dietary_tags @> %(dietary)s::text[]
      AND NOT (p.allergens && %(allergen_free)s::text[])
      AND (%(cells7)s::text[] IS NULL OR m.h3_r7 = ANY(%(cells7)s::text[]))
      AND (%(cells9)s::text[] IS NULL OR m.h3_r9 = ANY(%(cells9)s::text[]))
      AND (NOT %(open_now)s OR (
          NOT EXISTS (SELECT 1 FROM merchant_holidays hd
                      WHERE hd.merchant_id = m.id AND hd.day = (%(now)s AT TIME ZONE c.timezone)::date)
          AND (NOT EXISTS (SELECT 1 FROM merchant_hours h WHERE h.merchant_id = m.id)
               OR EXISTS (SELECT 1 FROM merchant_hours h
                          WHERE h.merchant_id = m.id
                            AND h.weekday = extract(isodow FROM %(now)s AT TIME ZONE c.timezone)::int - 1
                            AND (%(now)s AT TIME ZONE c.timezone)::time >= h.opens
                            AND (%(now)s AT TIME ZONE c.timezone)::time < h.closes))))
)
"""


async def search(
    conn: Connection, params: dict[str, Any], *, radius_m: int | None, after: list[Any] | None, limit: int
) -> list[dict[str, Any]]:
    """One page of hits, best rank first, then nearest, then id (the keyset of the cursor)."""
    return await (
        await conn.execute(
            _SEARCH_CTE
            + """
            SELECT * FROM hits
            WHERE (%(radius)s::int IS NULL OR distance_m <= %(radius)s)
              AND (%(after)s::text IS NULL OR (-rank, coalesce(distance_m, 0), product_id)
                   > (%(a_rank)s::numeric, %(a_dist)s::int, %(a_id)s::uuid))
            ORDER BY -rank, coalesce(distance_m, 0), product_id
            LIMIT %(limit)s
            """,
            {
                **params,
                "radius": radius_m,
                "after": None if after is None else "yes",
                "a_rank": None if after is None else after[0],
                "a_dist": None if after is None else after[1],
                "a_id": None if after is None else after[2],
                "limit": limit,
            },
        )
    ).fetchall()


async def search_facets(conn: Connection, params: dict[str, Any], *, radius_m: int | None) -> dict[str, Any]:
    """Counts per category and dietary tag, and the price range, over every hit (not one page)."""
    row = await (
        await conn.execute(
            _SEARCH_CTE
            + """
            , filtered AS (SELECT * FROM hits WHERE %(radius)s::int IS NULL OR distance_m <= %(radius)s)
            SELECT
                (SELECT coalesce(jsonb_agg(jsonb_build_array(category, n) ORDER BY n DESC, category), '[]')
                 FROM (SELECT category, count(*) AS n FROM filtered GROUP BY category) c) AS categories,
                (SELECT coalesce(jsonb_agg(jsonb_build_array(tag, n) ORDER BY n DESC, tag), '[]')
                 FROM (SELECT tag, count(*) AS n FROM filtered, unnest(dietary_tags) AS tag GROUP BY tag) d)
                    AS dietary,
                (SELECT min(min_price) FROM filtered) AS price_min,
                (SELECT max(min_price) FROM filtered) AS price_max
            """,
            {**params, "radius": radius_m},
        )
    ).fetchone()
    assert row is not None
    return row
