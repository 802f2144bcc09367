"""All SQL of merchant webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from nearx.db import Connection
from nearx.ids import new_id


async def insert_subscription(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO webhook_subscriptions (id, merchant_id, city_id, url, event_types, created_by)
        VALUES (%(id)s, %(merchant_id)s, %(city_id)s, %(url)s, %(event_types)s, %(created_by)s)
        """,
        row,
    )


async def subscriptions_of(conn: Connection, merchant_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM webhook_subscriptions WHERE merchant_id = %s ORDER BY created_at, id",
            (merchant_id,),
        )
    ).fetchall()


async def get_subscription(conn: Connection, subscription_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM webhook_subscriptions WHERE id = %s", (subscription_id,))
    ).fetchone()


async def enqueue(
    conn: Connection, merchant_id: uuid.UUID, event_type: str, event_id: uuid.UUID, body: Any
) -> int:
    """One pending delivery per matching active subscription (idempotent per event)."""
    subscriptions = await (
        await conn.execute(
            """
            SELECT id FROM webhook_subscriptions
            WHERE merchant_id = %s AND active AND %s = ANY(event_types) ORDER BY id
            """,
            (merchant_id, event_type),
        )
    ).fetchall()
    added = 0
    for subscription in subscriptions:
        inserted = await conn.execute(
            """
            INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, body)
            VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subscription_id, event_id) DO NOTHING
            """,
            (new_id(), subscription["id"], event_id, event_type, Jsonb(body)),
        )
        added += inserted.rowcount
    return added


async def claim_due(conn: Connection, due_by: datetime, limit: int) -> list[dict[str, Any]]:
    """Pending deliveries due by ``due_by``, with their target, locked so parallel senders skip each other."""
    return await (
        await conn.execute(
            """
            SELECT d.*, s.url
            FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= %s
            ORDER BY d.next_attempt_at, d.id
            LIMIT %s
            FOR UPDATE OF d SKIP LOCKED
            """,
            (due_by, limit),
        )
    ).fetchall()


async def reschedule(conn: Connection, delivery_id: uuid.UUID, after: timedelta) -> None:
    await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() + %s WHERE id = %s", (after, delivery_id)
    )


async def record_attempt(
    conn: Connection,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    await conn.execute(
        """
        INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, error, duration_ms)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (new_id(), delivery_id, attempt, status_code, error, duration_ms),
    )
    await conn.execute(
        """
        UPDATE webhook_deliveries SET attempts = %s, last_status_code = %s, last_error = %s WHERE id = %s
        """,
        (attempt, status_code, error, delivery_id),
    )


async def finish(conn: Connection, delivery_id: uuid.UUID, status: str) -> None:
    await conn.execute(
        "UPDATE webhook_deliveries SET status = %s, finished_at = now() WHERE id = %s", (status, delivery_id)
    )


async def deliveries_of(conn: Connection, subscription_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT * FROM webhook_deliveries WHERE subscription_id = %s ORDER BY created_at DESC, id LIMIT %s
            """,
            (subscription_id, limit),
        )
    ).fetchall()


async def attempts_of(conn: Connection, delivery_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM webhook_attempts WHERE delivery_id = ANY(%s) ORDER BY delivery_id, attempt",
            (list(delivery_ids),),
        )
    ).fetchall()
