"""All SQL of orders: parents, merchant orders, items, the transition table, history, refunds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from nearx.db import Connection
from nearx.ids import new_id


async def delivery_fee_rule(conn: Connection, city_id: str) -> dict[str, Any]:
    row = await (
        await conn.execute("SELECT * FROM delivery_fee_rules WHERE city_id = %s", (city_id,))
    ).fetchone()
    assert row is not None, f"no delivery fee rule for city {city_id}"
    return row


async def promotion(conn: Connection, city_id: str, code: str, now: datetime) -> dict[str, Any] | None:
    return await (
        await conn.execute(
            """
            SELECT * FROM promotions
            WHERE city_id = %s AND code = %s AND active AND (valid_until IS NULL OR valid_until > %s)
            """,
            (city_id, code, now),
        )
    ).fetchone()


async def insert_parent(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO orders (id, customer_id, city_id, currency, delivery_lat, delivery_lng, items_minor,
                            delivery_fee_minor, tax_minor, discount_minor, total_minor, promo_code, emergency,
                            emergency_reason, session_id, match_id, fraud_decision, fraud_score,
                            fraud_reasons, fraud_scorer)
        VALUES (%(id)s, %(customer_id)s, %(city_id)s, %(currency)s, %(delivery_lat)s, %(delivery_lng)s,
                %(items_minor)s, %(delivery_fee_minor)s, %(tax_minor)s, %(discount_minor)s, %(total_minor)s,
                %(promo_code)s, %(emergency)s, %(emergency_reason)s, %(session_id)s, %(match_id)s,
                %(fraud_decision)s, %(fraud_score)s, %(fraud_reasons)s, %(fraud_scorer)s)
        """,
        row,
    )


async def insert_child(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO merchant_orders (id, parent_id, merchant_id, customer_id, city_id, currency, items_minor,
                                     delivery_fee_minor, tax_minor, discount_minor, total_minor, distance_m,
                                     emergency, accept_by, eta_p50_s, eta_p90_s, eta_model, eta_degraded,
                                     eta_promised_at)
        VALUES (%(id)s, %(parent_id)s, %(merchant_id)s, %(customer_id)s, %(city_id)s, %(currency)s,
                %(items_minor)s, %(delivery_fee_minor)s, %(tax_minor)s, %(discount_minor)s, %(total_minor)s,
                %(distance_m)s, %(emergency)s, %(accept_by)s, %(eta_p50_s)s, %(eta_p90_s)s, %(eta_model)s,
                %(eta_degraded)s, %(eta_promised_at)s)
        """,
        row,
    )


async def city_clock(conn: Connection, city_id: str) -> dict[str, Any]:
    row = await (
        await conn.execute("SELECT id, timezone, country FROM cities WHERE id = %s", (city_id,))
    ).fetchone()
    assert row is not None, f"no city {city_id}"
    return row


async def fraud_signals(
    conn: Connection, customer_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """What the fraud model reads about the customer and the device (the session's user agent + IP).

    ``new_device``: no earlier session of this customer with this user agent (NULL when the
    session is unknown); ``device_orders_1h``: checkouts from sessions with the same user agent
    and IP in the last hour (any account); ``home_lat/lng``: the address labelled home, else the
    oldest; ``prior_orders``: the customer's earlier checkouts.
    """
    row = await (
        await conn.execute(
            """
            WITH cur AS (SELECT id, user_agent, ip, created_at FROM auth_sessions WHERE id = %(session)s),
                 home AS (SELECT lat, lng FROM addresses
                          WHERE user_id = %(customer)s AND erased_at IS NULL
                          ORDER BY lower(coalesce(label, '')) = 'home' DESC, created_at LIMIT 1)
            SELECT
                (SELECT NOT EXISTS (SELECT 1 FROM auth_sessions s
                                    WHERE s.user_id = %(customer)s AND s.id <> cur.id
                                      AND s.created_at < cur.created_at
                                      AND s.user_agent IS NOT DISTINCT FROM cur.user_agent)
                 FROM cur) AS new_device,
                (SELECT count(*) FROM orders o LEFT JOIN auth_sessions s ON s.id = o.session_id, cur
                 WHERE o.created_at > %(now)s - interval '1 hour'
                   AND (o.session_id = cur.id
                        OR (cur.user_agent IS NOT NULL AND s.user_agent = cur.user_agent
                            AND s.ip IS NOT DISTINCT FROM cur.ip))) AS device_orders_1h,
                (SELECT lat FROM home) AS home_lat,
                (SELECT lng FROM home) AS home_lng,
                (SELECT count(*) FROM orders WHERE customer_id = %(customer)s) AS prior_orders
            """,
            {"session": session_id, "customer": customer_id, "now": now},
        )
    ).fetchone()
    assert row is not None
    return row


async def insert_fraud_assessment(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO checkout_fraud_assessments (id, city_id, customer_id, order_id, scorer, degraded, score,
                                                decision, outcome, reasons, inputs, fingerprint)
        VALUES (%(id)s, %(city_id)s, %(customer_id)s, %(order_id)s, %(scorer)s, %(degraded)s, %(score)s,
                %(decision)s, %(outcome)s, %(reasons)s, %(inputs)s, %(fingerprint)s)
        """,
        {**row, "inputs": Jsonb(row["inputs"])},
    )


async def review_verdict(conn: Connection, customer_id: uuid.UUID, fingerprint: str) -> bool | None:
    """The latest reviewer's label on a held checkout of this cart by this customer (None: never reviewed)."""
    row = await (
        await conn.execute(
            """
            SELECT fraud_label FROM checkout_fraud_assessments
            WHERE customer_id = %s AND fingerprint = %s AND reviewed_at IS NOT NULL
            ORDER BY reviewed_at DESC LIMIT 1
            """,
            (customer_id, fingerprint),
        )
    ).fetchone()
    return None if row is None else bool(row["fraud_label"])


async def held_checkouts(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Checkouts held for review that nobody has decided yet, oldest first."""
    return await (
        await conn.execute(
            """
            SELECT * FROM checkout_fraud_assessments
            WHERE outcome = 'held_for_review' AND reviewed_at IS NULL
            ORDER BY at, id LIMIT %s
            """,
            (limit,),
        )
    ).fetchall()


async def label_held_checkout(
    conn: Connection, assessment_id: uuid.UUID, *, fraud: bool, reviewer: uuid.UUID
) -> dict[str, Any] | None:
    """Record the reviewer's verdict on an undecided hold; None when there is no such hold."""
    return await (
        await conn.execute(
            """
            UPDATE checkout_fraud_assessments
            SET fraud_label = %s, reviewed_by = %s, reviewed_at = now()
            WHERE id = %s AND outcome = 'held_for_review' AND reviewed_at IS NULL
            RETURNING *
            """,
            (fraud, reviewer, assessment_id),
        )
    ).fetchone()


async def promised_p90_s(conn: Connection, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await (
        await conn.execute(
            "SELECT id, eta_p90_s FROM merchant_orders WHERE id = ANY(%s) AND eta_p90_s IS NOT NULL",
            (list(order_ids),),
        )
    ).fetchall()
    return {row["id"]: row["eta_p90_s"] for row in rows}


async def live_legs(conn: Connection, order_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Picked-up merchant orders with their courier's last position and mode (delivery's tables,
    read for the order's live ETA)."""
    return await (
        await conn.execute(
            """
            SELECT d.merchant_order_id, d.city_id, d.dropoff_lat, d.dropoff_lng, c.mode,
                   p.lat, p.lng, p.fixed_at, ci.timezone, ci.country
            FROM deliveries d
            JOIN couriers c ON c.id = d.courier_id
            JOIN courier_positions p ON p.courier_id = d.courier_id
            JOIN cities ci ON ci.id = d.city_id
            WHERE d.merchant_order_id = ANY(%s) AND d.status = 'picked_up'
            """,
            (list(order_ids),),
        )
    ).fetchall()


async def insert_items(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            """
            INSERT INTO order_items (id, order_id, city_id, product_id, variant_id, name, sku, quantity,
                                     unit_price_minor, tax_class, tax_rate_bp, line_minor, tax_minor)
            VALUES (%(id)s, %(order_id)s, %(city_id)s, %(product_id)s, %(variant_id)s, %(name)s, %(sku)s,
                    %(quantity)s, %(unit_price_minor)s, %(tax_class)s, %(tax_rate_bp)s, %(line_minor)s,
                    %(tax_minor)s)
            """,
            rows,
        )


async def insert_emergency_audit(
    conn: Connection,
    *,
    parent_id: uuid.UUID,
    city_id: str,
    customer_id: uuid.UUID,
    reason: str,
    merchant_ids: Sequence[uuid.UUID],
) -> None:
    await conn.execute(
        """
        INSERT INTO order_emergency_audit (id, parent_id, city_id, customer_id, reason, merchant_ids)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (new_id(), parent_id, city_id, customer_id, reason, list(merchant_ids)),
    )


async def get_parent(conn: Connection, order_id: uuid.UUID) -> dict[str, Any] | None:
    return await (await conn.execute("SELECT * FROM orders WHERE id = %s", (order_id,))).fetchone()


async def children_of(conn: Connection, parent_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM merchant_orders WHERE parent_id = %s ORDER BY merchant_id", (parent_id,)
        )
    ).fetchall()


async def get_child(
    conn: Connection, order_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    return await (
        await conn.execute("SELECT * FROM merchant_orders WHERE id = %s" + lock, (order_id,))
    ).fetchone()


async def items_of(conn: Connection, order_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM order_items WHERE order_id = ANY(%s) ORDER BY order_id, sku, id",
            (list(order_ids),),
        )
    ).fetchall()


async def allowed(conn: Connection, from_status: str, to_status: str, actor_kind: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT 1 FROM order_status_transitions "
            "WHERE from_status = %s AND to_status = %s AND actor_kind = %s",
            (from_status, to_status, actor_kind),
        )
    ).fetchone()
    return row is not None


async def set_status(
    conn: Connection,
    order_id: uuid.UUID,
    status: str,
    *,
    cancelled_by: str | None = None,
    cancellation_fee_minor: int = 0,
) -> None:
    await conn.execute(
        """
        UPDATE merchant_orders
        SET status = %s, updated_at = now(),
            cancelled_by = coalesce(%s, cancelled_by),
            cancellation_fee_minor = cancellation_fee_minor + %s
        WHERE id = %s
        """,
        (status, cancelled_by, cancellation_fee_minor, order_id),
    )


async def record_transition(
    conn: Connection,
    *,
    order_id: uuid.UUID,
    city_id: str,
    from_status: str | None,
    to_status: str,
    actor_kind: str,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO order_status_history
            (id, order_id, city_id, from_status, to_status, actor_kind, actor_id, reason)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (new_id(), order_id, city_id, from_status, to_status, actor_kind, actor_id, reason),
    )


async def history(conn: Connection, order_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM order_status_history WHERE order_id = %s ORDER BY at, id", (order_id,)
        )
    ).fetchall()


async def overdue(
    conn: Connection, now: datetime, variant_ids: Sequence[uuid.UUID] | None
) -> list[uuid.UUID]:
    """Placed merchant orders past their acceptance deadline (optionally holding some variants)."""
    rows = await (
        await conn.execute(
            """
            SELECT o.id FROM merchant_orders o
            WHERE o.status = 'placed' AND o.accept_by <= %(now)s
              AND (%(variants)s::uuid[] IS NULL OR EXISTS (
                  SELECT 1 FROM inventory_reservations r
                  WHERE r.order_id = o.id AND r.variant_id = ANY(%(variants)s::uuid[])))
            ORDER BY o.accept_by
            LIMIT 500
            """,
            {"now": now, "variants": None if variant_ids is None else list(variant_ids)},
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def merchant_queue(
    conn: Connection, merchant_id: uuid.UUID, statuses: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT * FROM merchant_orders WHERE merchant_id = %s AND status = ANY(%s)
            ORDER BY emergency DESC, created_at, id LIMIT %s
            """,
            (merchant_id, list(statuses), limit),
        )
    ).fetchall()


async def add_refund(
    conn: Connection,
    *,
    order_id: uuid.UUID,
    amount_minor: int,
    item_amounts: Sequence[tuple[uuid.UUID, int, int]],
) -> None:
    """Count a refund against the order and its items (``(item_id, quantity, amount)``)."""
    await conn.execute(
        "UPDATE merchant_orders SET refunded_minor = refunded_minor + %s, updated_at = now() WHERE id = %s",
        (amount_minor, order_id),
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(
            """
            UPDATE order_items
            SET refunded_quantity = refunded_quantity + %s, refunded_minor = refunded_minor + %s
            WHERE id = %s
            """,
            [(quantity, amount, item_id) for item_id, quantity, amount in item_amounts],
        )


async def insert_refund(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO order_refunds (id, order_id, city_id, amount_minor, currency, reason, items, status,
                                   payment_reference, requested_by)
        VALUES (%(id)s, %(order_id)s, %(city_id)s, %(amount_minor)s, %(currency)s, %(reason)s, %(items)s,
                %(status)s, %(payment_reference)s, %(requested_by)s)
        """,
        {**row, "items": Jsonb(row["items"])},
    )


# --- data rights (the profiles context's export and erasure) ---------------------------------


async def orders_of_customer(conn: Connection, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every checkout of the customer, each with its merchant orders and their items (JSON-ready)."""
    cursor = await conn.execute(
        """
        SELECT to_jsonb(o) || jsonb_build_object('merchant_orders', coalesce((
                   SELECT jsonb_agg(to_jsonb(mo) || jsonb_build_object('items', coalesce((
                              SELECT jsonb_agg(to_jsonb(i) ORDER BY i.id)
                              FROM order_items i WHERE i.order_id = mo.id), '[]'::jsonb))
                          ORDER BY mo.id)
                   FROM merchant_orders mo WHERE mo.parent_id = o.id), '[]'::jsonb)) AS checkout
        FROM orders o WHERE o.customer_id = %s ORDER BY o.created_at, o.id
        """,
        (customer_id,),
    )
    return [row["checkout"] for row in await cursor.fetchall()]


async def coarsen_delivery_points(conn: Connection, customer_id: uuid.UUID) -> int:
    """Round the customer's delivery points to 2 decimals (about 1 km): the orders, their amounts
    and the city stay for the books and for aggregate statistics; the doorstep does not."""
    cursor = await conn.execute(
        "UPDATE orders SET delivery_lat = round(delivery_lat::numeric, 2), "
        "delivery_lng = round(delivery_lng::numeric, 2) WHERE customer_id = %s",
        (customer_id,),
    )
    return cursor.rowcount
