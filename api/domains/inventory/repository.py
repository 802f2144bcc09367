"""All SQL of stock and reservations.

Every change of ``reserved`` is a conditional UPDATE that checks availability in
the same statement, so two checkouts racing for the last unit serialise on the
inventory row and exactly one wins; the table's CHECKs back this up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nearx.db import Connection
from nearx.ids import new_id


async def create(
    conn: Connection, *, variant_id: uuid.UUID, merchant_id: uuid.UUID, city_id: str, on_hand: int
) -> None:
    await conn.execute(
        "INSERT INTO inventory (variant_id, merchant_id, city_id, on_hand) VALUES (%s, %s, %s, %s)",
        (variant_id, merchant_id, city_id, on_hand),
    )


async def get(conn: Connection, variant_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM inventory WHERE variant_id = %s", (variant_id,))
    ).fetchone()


async def set_on_hand(conn: Connection, variant_id: uuid.UUID, on_hand: int) -> dict[str, Any] | None:
    """Set the count, unless it would drop below what is already reserved (then ``None``)."""
    return await (
        await conn.execute(
            """
            UPDATE inventory SET on_hand = %(n)s, updated_at = now()
            WHERE variant_id = %(v)s AND reserved <= %(n)s
            RETURNING *
            """,
            {"n": on_hand, "v": variant_id},
        )
    ).fetchone()


async def try_reserve(conn: Connection, variant_id: uuid.UUID, quantity: int) -> dict[str, Any] | None:
    """Reserve ``quantity`` if that many are free; ``None`` (and no change) otherwise."""
    return await (
        await conn.execute(
            """
            UPDATE inventory SET reserved = reserved + %(q)s, updated_at = now()
            WHERE variant_id = %(v)s AND on_hand - reserved >= %(q)s
            RETURNING merchant_id, city_id
            """,
            {"q": quantity, "v": variant_id},
        )
    ).fetchone()


async def insert_reservation(
    conn: Connection,
    *,
    variant_id: uuid.UUID,
    merchant_id: uuid.UUID,
    city_id: str,
    order_id: uuid.UUID,
    quantity: int,
    expires_at: datetime,
) -> uuid.UUID:
    reservation_id = new_id()
    await conn.execute(
        """
        INSERT INTO inventory_reservations
            (id, variant_id, merchant_id, city_id, order_id, quantity, expires_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (reservation_id, variant_id, merchant_id, city_id, order_id, quantity, expires_at),
    )
    return reservation_id


async def settle_order_reservations(
    conn: Connection, order_id: uuid.UUID, status: str
) -> list[dict[str, Any]]:
    """Mark an order's active reservations committed or released; return what moved."""
    return await (
        await conn.execute(
            """
            UPDATE inventory_reservations SET status = %s, settled_at = now()
            WHERE order_id = %s AND status = 'active'
            RETURNING variant_id, quantity
            """,
            (status, order_id),
        )
    ).fetchall()


async def settle_expired(
    conn: Connection, now: datetime, variant_ids: Sequence[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Release active reservations past their expiry (optionally only for some variants)."""
    return await (
        await conn.execute(
            """
            UPDATE inventory_reservations SET status = 'released', settled_at = now()
            WHERE id IN (
                SELECT id FROM inventory_reservations
                WHERE status = 'active' AND expires_at <= %(now)s
                  AND (%(variants)s::uuid[] IS NULL OR variant_id = ANY(%(variants)s::uuid[]))
                ORDER BY id
                FOR UPDATE SKIP LOCKED
            )
            RETURNING variant_id, quantity
            """,
            {"now": now, "variants": None if variant_ids is None else list(variant_ids)},
        )
    ).fetchall()


async def unreserve(conn: Connection, variant_id: uuid.UUID, quantity: int) -> None:
    await conn.execute(
        "UPDATE inventory SET reserved = reserved - %s, updated_at = now() WHERE variant_id = %s",
        (quantity, variant_id),
    )


async def consume(conn: Connection, variant_id: uuid.UUID, quantity: int) -> None:
    """Reserved units leave the shelf: both counters drop together."""
    await conn.execute(
        """
        UPDATE inventory SET on_hand = on_hand - %(q)s, reserved = reserved - %(q)s, updated_at = now()
        WHERE variant_id = %(v)s
        """,
        {"q": quantity, "v": variant_id},
    )
