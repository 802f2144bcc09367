"""SQL of the matching context: the merchant snapshot behind the in-memory index, the customer's
preferences, and the served match (read back from its ``match.served`` event for click logging)."""

from __future__ import annotations

import uuid
from typing import Any

from nearx.db import Connection


async def snapshot_version(conn: Connection) -> tuple[Any, ...]:
    """A cheap fingerprint of what the index holds: it changes when any merchant, hour or holiday does."""
    row = await (
        await conn.execute(
            """
            SELECT (SELECT max(updated_at) FROM merchants) AS merchants_at,
                   (SELECT count(*) FROM merchants WHERE status = 'approved' AND NOT paused) AS live,
                   (SELECT count(*) FROM merchant_hours) AS hours,
                   (SELECT coalesce(sum(hashtext(merchant_id::text || opens::text || closes::text
                                                 || weekday)), 0) FROM merchant_hours) AS hours_hash,
                   (SELECT count(*) FROM merchant_holidays) AS holidays
            """
        )
    ).fetchone()
    assert row is not None
    return tuple(row.values())


async def live_merchants(conn: Connection) -> list[dict[str, Any]]:
    """Approved merchants whose busy switch is off, with a price level 1-4 (quartile of their median
    active variant price within the city; 2 when they list no priced product yet)."""
    return await (
        await conn.execute(
            """
            WITH prices AS (
                SELECT p.merchant_id,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.price_minor) AS median_price
                FROM products p JOIN product_variants v ON v.product_id = p.id
                WHERE p.active AND v.active
                GROUP BY p.merchant_id
            )
            SELECT m.id, m.city_id, m.kind, m.category, m.name, m.lat, m.lng, m.h3_r7,
                   m.prep_time_min, m.delivery_radius_m, m.eco_packaging,
                   CASE WHEN pr.median_price IS NULL THEN 2
                        ELSE ntile(4) OVER (PARTITION BY m.city_id, pr.median_price IS NULL
                                            ORDER BY pr.median_price) END AS price_level
            FROM merchants m LEFT JOIN prices pr ON pr.merchant_id = m.id
            WHERE m.status = 'approved' AND NOT m.paused
            ORDER BY m.id
            """
        )
    ).fetchall()


async def hours(conn: Connection) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT h.merchant_id, h.weekday, h.opens, h.closes
            FROM merchant_hours h JOIN merchants m ON m.id = h.merchant_id
            WHERE m.status = 'approved' AND NOT m.paused
            """
        )
    ).fetchall()


async def holidays(conn: Connection) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT d.merchant_id, d.day
            FROM merchant_holidays d JOIN merchants m ON m.id = d.merchant_id
            WHERE m.status = 'approved' AND NOT m.paused AND d.day >= current_date - 1
            """
        )
    ).fetchall()


async def cities(conn: Connection) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT id, country, timezone, min_lat, min_lng, max_lat, max_lng FROM cities ORDER BY id"
        )
    ).fetchall()


async def preferences(conn: Connection, user_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute(
            """
            SELECT eco_first, price_sensitivity, favourite_merchants
            FROM profiles WHERE user_id = %s AND deleted_at IS NULL
            """,
            (user_id,),
        )
    ).fetchone()


async def served_match(conn: Connection, match_id: uuid.UUID) -> dict[str, Any] | None:
    """The ``match.served`` event of a match (its customer and the merchants shown, by position)."""
    return await (
        await conn.execute(
            """
            SELECT payload, city_id FROM outbox
            WHERE aggregate_type = 'match' AND aggregate_id = %s AND event_type = 'match.served'
            """,
            (match_id,),
        )
    ).fetchone()
