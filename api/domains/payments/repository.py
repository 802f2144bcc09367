"""All SQL of payment intents, refunds, webhook dedupe and commissions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from nearx.db import Connection

Row = dict[str, Any]


async def insert_intent(conn: Connection, values: Mapping[str, Any]) -> Row:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = await (
        await conn.execute(
            f"INSERT INTO payment_intents ({columns}) VALUES ({placeholders}) RETURNING *",
            tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in values.values()),
        )
    ).fetchone()
    assert row is not None
    return row


async def get_intent(conn: Connection, intent_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM payment_intents WHERE id = %s" + (" FOR UPDATE" if lock else "")
    return await (await conn.execute(sql, (intent_id,))).fetchone()


async def find_by_provider_ref(conn: Connection, provider: str, provider_ref: str) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payment_intents WHERE provider = %s AND provider_ref = %s",
            (provider, provider_ref),
        )
    ).fetchone()


_UPDATABLE = frozenset(
    {
        "status",
        "provider_ref",
        "payment_method",
        "pending_operation",
        "settlement",
        "last_error",
        "action_url",
        "authorized_at",
        "expires_at",
        "amount_captured",
        "amount_refunded",
    }
)


async def update_intent(conn: Connection, intent_id: uuid.UUID, changes: Mapping[str, Any]) -> Row:
    unknown = set(changes) - _UPDATABLE
    assert not unknown, unknown
    assignments = ", ".join(f"{column} = %s" for column in changes)
    row = await (
        await conn.execute(
            f"UPDATE payment_intents SET {assignments}, updated_at = now() WHERE id = %s RETURNING *",
            (*(Jsonb(v) if isinstance(v, dict | list) else v for v in changes.values()), intent_id),
        )
    ).fetchone()
    assert row is not None
    return row


async def record_transition(
    conn: Connection,
    intent_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    actor: str,
    reason: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO payment_intent_transitions (intent_id, from_status, to_status, actor, reason) "
        "VALUES (%s, %s, %s, %s, %s)",
        (intent_id, from_status, to_status, actor, reason),
    )


async def transitions(conn: Connection, intent_id: uuid.UUID) -> list[Row]:
    return list(
        await (
            await conn.execute(
                "SELECT from_status, to_status, actor, reason, at FROM payment_intent_transitions "
                "WHERE intent_id = %s ORDER BY id",
                (intent_id,),
            )
        ).fetchall()
    )


async def pending_refund_total(conn: Connection, intent_id: uuid.UUID) -> int:
    row = await (
        await conn.execute(
            "SELECT COALESCE(sum(amount_minor), 0) AS total FROM payment_refunds "
            "WHERE intent_id = %s AND status IN ('requested', 'pending')",
            (intent_id,),
        )
    ).fetchone()
    assert row is not None
    return int(row["total"])


async def find_refund(conn: Connection, intent_id: uuid.UUID, request_key: str) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payment_refunds WHERE intent_id = %s AND request_key = %s",
            (intent_id, request_key),
        )
    ).fetchone()


async def get_refund(conn: Connection, refund_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM payment_refunds WHERE id = %s" + (" FOR UPDATE" if lock else "")
    return await (await conn.execute(sql, (refund_id,))).fetchone()


async def insert_refund(conn: Connection, values: Mapping[str, Any]) -> Row:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = await (
        await conn.execute(
            f"INSERT INTO payment_refunds ({columns}) VALUES ({placeholders}) RETURNING *",
            tuple(values.values()),
        )
    ).fetchone()
    assert row is not None
    return row


async def finish_refund(
    conn: Connection, refund_id: uuid.UUID, status: str, provider_ref: str | None, failure: str | None
) -> Row:
    row = await (
        await conn.execute(
            "UPDATE payment_refunds SET status = %s, provider_ref = %s, failure_reason = %s, "
            "updated_at = now() "
            "WHERE id = %s RETURNING *",
            (status, provider_ref, failure, refund_id),
        )
    ).fetchone()
    assert row is not None
    return row


async def stale_open(conn: Connection, older_than: datetime) -> list[uuid.UUID]:
    """Intents waiting on a provider (an unanswered call, or a customer at a redirect checkout)."""
    rows = await (
        await conn.execute(
            "SELECT id FROM payment_intents WHERE status IN ('processing', 'requires_action') "
            "AND updated_at <= %s ORDER BY id",
            (older_than,),
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def pending_refunds(conn: Connection, older_than: datetime) -> list[uuid.UUID]:
    rows = await (
        await conn.execute(
            "SELECT id FROM payment_refunds WHERE status = 'pending' AND updated_at <= %s ORDER BY id",
            (older_than,),
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def requested_refunds(conn: Connection) -> list[uuid.UUID]:
    rows = await (
        await conn.execute(
            "SELECT id FROM payment_refunds WHERE status = 'requested' ORDER BY created_at, id"
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def mark_refund_sent(conn: Connection, refund_id: uuid.UUID) -> bool:
    """Move a requested refund to pending; False if another dispatcher took it first."""
    row = await (
        await conn.execute(
            "UPDATE payment_refunds SET status = 'pending', updated_at = now() "
            "WHERE id = %s AND status = 'requested' RETURNING id",
            (refund_id,),
        )
    ).fetchone()
    return row is not None


async def captured_intent_for_order(conn: Connection, order_ids: tuple[uuid.UUID, ...]) -> Row | None:
    """The succeeded payment of an order (its merchant order or its parent), locked for a refund."""
    return await (
        await conn.execute(
            "SELECT * FROM payment_intents WHERE order_id = ANY(%s) AND status = 'succeeded' "
            "ORDER BY created_at LIMIT 1 FOR UPDATE",
            (list(order_ids),),
        )
    ).fetchone()


async def deposit_for(conn: Connection, booking_id: uuid.UUID) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payment_intents WHERE order_id = %s AND purpose = 'deposit' "
            "ORDER BY created_at LIMIT 1",
            (booking_id,),
        )
    ).fetchone()


async def expired_authorizations(conn: Connection, now: datetime) -> list[uuid.UUID]:
    rows = await (
        await conn.execute(
            "SELECT id FROM payment_intents WHERE status = 'requires_capture' AND expires_at <= %s "
            "ORDER BY id",
            (now,),
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def commission_bp(conn: Connection, category: str) -> int:
    row = await (
        await conn.execute(
            "SELECT commission_bp FROM merchant_category_commissions WHERE category IN (%s, 'default') "
            "ORDER BY category = 'default' LIMIT 1",
            (category,),
        )
    ).fetchone()
    assert row is not None, "the default commission row is seeded by migration 0041"
    return int(row["commission_bp"])


async def remember_webhook(conn: Connection, provider: str, event_id: str, event_type: str) -> bool:
    """True the first time an event id is seen; False for a replay."""
    row = await (
        await conn.execute(
            "INSERT INTO payment_webhook_events (provider, event_id, event_type) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            (provider, event_id, event_type),
        )
    ).fetchone()
    return row is not None


async def release_idempotency_key(conn: Connection, scope: str, key: str) -> None:
    """Forget a claimed key whose request failed, so a failed request leaves nothing behind."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE scope = %s AND key = %s AND response_status IS NULL", (scope, key)
    )


async def fraud_history(conn: Connection, customer_id: uuid.UUID | None) -> tuple[int, int]:
    """(declines in the last hour, successful payments ever) for a customer."""
    if customer_id is None:
        return 0, 0
    row = await (
        await conn.execute(
            """
            SELECT
              (SELECT count(*) FROM payment_intent_transitions t JOIN payment_intents i ON i.id = t.intent_id
                WHERE i.customer_id = %s AND t.to_status = 'requires_payment_method'
                  AND t.reason LIKE '%%declined' AND t.at > now() - interval '1 hour') AS declines,
              (SELECT count(*) FROM payment_intents WHERE customer_id = %s AND status = 'succeeded') AS paid
            """,
            (customer_id, customer_id),
        )
    ).fetchone()
    assert row is not None
    return int(row["declines"]), int(row["paid"])


async def record_assessment(
    conn: Connection,
    intent_id: uuid.UUID,
    *,
    scorer: str,
    score: float,
    decision: str,
    reasons: list[str],
    decided_by: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO payment_fraud_assessments (intent_id, scorer, score, decision, reasons, decided_by) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (intent_id, scorer, score, decision, reasons, decided_by),
    )


async def latest_assessment(conn: Connection, intent_id: uuid.UUID) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payment_fraud_assessments WHERE intent_id = %s ORDER BY id DESC LIMIT 1",
            (intent_id,),
        )
    ).fetchone()


async def held_for_review(conn: Connection, *, after: uuid.UUID | None, limit: int) -> list[Row]:
    """Open intents whose latest assessment is an undecided review (keyset on the intent id)."""
    return list(
        await (
            await conn.execute(
                """
                SELECT i.*, a.scorer, a.score, a.reasons, a.at AS assessed_at
                  FROM payment_intents i
                  JOIN LATERAL (SELECT * FROM payment_fraud_assessments f WHERE f.intent_id = i.id
                                 ORDER BY f.id DESC LIMIT 1) a ON true
                 WHERE a.decision = 'review' AND a.decided_by IS NULL
                   AND i.status IN ('requires_payment_method', 'requires_action')
                   AND (%(after)s::uuid IS NULL OR i.id > %(after)s)
                 ORDER BY i.id LIMIT %(limit)s
                """,
                {"after": after, "limit": limit},
            )
        ).fetchall()
    )


# --- data rights (the profiles context's export) ---------------------------------------------


async def intents_of_customer(conn: Connection, customer_id: uuid.UUID) -> list[Row]:
    """The customer's payment intents with their refunds (JSON-ready); no provider internals
    (in-flight operations, settlement legs), which describe the platform's books, not the person."""
    cursor = await conn.execute(
        """
        SELECT to_jsonb(p) - 'pending_operation' - 'settlement' - 'provider_ref'
               || jsonb_build_object('refunds', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                              'id', r.id, 'amount_minor', r.amount_minor, 'currency', r.currency,
                              'status', r.status, 'reason', r.reason, 'created_at', r.created_at)
                          ORDER BY r.created_at, r.id)
                   FROM payment_refunds r WHERE r.intent_id = p.id), '[]'::jsonb)) AS intent
        FROM payment_intents p WHERE p.customer_id = %s ORDER BY p.created_at, p.id
        """,
        (customer_id,),
    )
    return [row["intent"] for row in await cursor.fetchall()]


_SETTLED_ORDER_STATUSES = ("delivered", "refunded", "partially_refunded", "cancelled", "rejected")
"""Merchant-order states after which nothing more is delivered or charged."""


async def intents_of_settled_orders(conn: Connection) -> list[Row]:
    """Authorized order payments whose merchant orders (children of ``order_id``, or ``order_id``
    itself) have all reached a final state, so the capture can be split; ``payers`` counts the
    order's live payments (more than one cannot be split automatically)."""
    return list(
        await (
            await conn.execute(
                """
                SELECT i.id, (SELECT count(*) FROM payment_intents j WHERE j.order_id = i.order_id
                                 AND j.purpose = 'payment' AND j.status <> 'canceled') AS payers
                  FROM payment_intents i
                 WHERE i.status = 'requires_capture' AND i.purpose = 'payment' AND i.order_id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM merchant_orders m WHERE i.order_id IN (m.parent_id, m.id))
                   AND NOT EXISTS (SELECT 1 FROM merchant_orders m
                                    WHERE i.order_id IN (m.parent_id, m.id) AND m.status <> ALL(%s))
                 ORDER BY i.id
                """,
                (list(_SETTLED_ORDER_STATUSES),),
            )
        ).fetchall()
    )


async def merchant_orders_paid_by(conn: Connection, order_id: uuid.UUID) -> list[Row]:
    """The merchant orders an intent pays for, with the merchant's category and the courier who
    delivered (none when no delivery row says so)."""
    return list(
        await (
            await conn.execute(
                """
                SELECT m.id, m.merchant_id, m.status, m.items_minor, m.discount_minor, m.delivery_fee_minor,
                       m.tax_minor, m.total_minor, m.refunded_minor, m.cancellation_fee_minor,
                       mc.category, d.courier_id
                  FROM merchant_orders m JOIN merchants mc ON mc.id = m.merchant_id
                  LEFT JOIN deliveries d ON d.merchant_order_id = m.id AND d.status = 'delivered'
                 WHERE %s IN (m.parent_id, m.id)
                 ORDER BY m.id
                """,
                (order_id,),
            )
        ).fetchall()
    )


async def authorized_intent_for_order(conn: Connection, order_ids: tuple[uuid.UUID, ...]) -> Row | None:
    """An order payment authorized but not captured yet (its capture will take only what remains)."""
    return await (
        await conn.execute(
            "SELECT * FROM payment_intents WHERE order_id = ANY(%s) AND purpose = 'payment' "
            "AND status = 'requires_capture' ORDER BY created_at LIMIT 1",
            (list(order_ids),),
        )
    ).fetchone()


async def order_payer(conn: Connection, order_id: uuid.UUID) -> Row | None:
    """Who owes a checkout (parent) or merchant order, and how much, or None for no such order."""
    return await (
        await conn.execute(
            """
            SELECT customer_id, currency, total_minor FROM orders WHERE id = %(id)s
            UNION ALL
            SELECT customer_id, currency, total_minor - refunded_minor FROM merchant_orders WHERE id = %(id)s
            """,
            {"id": order_id},
        )
    ).fetchone()
