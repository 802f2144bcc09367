"""All SQL of calendars and bookings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from nearx.db import Connection
from nearx.ids import new_id


async def upsert_calendar(
    conn: Connection, provider_id: uuid.UUID, values: dict[str, int | bool]
) -> dict[str, Any]:
    row = await (
        await conn.execute(
            """
            INSERT INTO provider_calendars
                (provider_id, buffer_min, travel_min, slot_step_min, free_cancel_hours, min_reschedule_hours,
                 emergency_preempts_holds)
            VALUES (%(p)s, %(buffer_min)s, %(travel_min)s, %(slot_step_min)s, %(free_cancel_hours)s,
                    %(min_reschedule_hours)s, %(emergency_preempts_holds)s)
            ON CONFLICT (provider_id) DO UPDATE SET
                buffer_min = EXCLUDED.buffer_min, travel_min = EXCLUDED.travel_min,
                slot_step_min = EXCLUDED.slot_step_min, free_cancel_hours = EXCLUDED.free_cancel_hours,
                min_reschedule_hours = EXCLUDED.min_reschedule_hours,
                emergency_preempts_holds = EXCLUDED.emergency_preempts_holds, updated_at = now()
            RETURNING *
            """,
            {"p": provider_id, **values},
        )
    ).fetchone()
    assert row is not None
    return row


async def calendar(conn: Connection, provider_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM provider_calendars WHERE provider_id = %s", (provider_id,))
    ).fetchone()


async def replace_availability(
    conn: Connection,
    provider_id: uuid.UUID,
    windows: Sequence[tuple[int, time, time]],
    exceptions: Sequence[tuple[date, time | None, time | None, bool, str | None]],
) -> None:
    await conn.execute("DELETE FROM provider_availability WHERE provider_id = %s", (provider_id,))
    await conn.execute("DELETE FROM provider_exceptions WHERE provider_id = %s", (provider_id,))
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO provider_availability (provider_id, weekday, starts, ends) VALUES (%s, %s, %s, %s)",
            [(provider_id, *window) for window in windows],
        )
        await cursor.executemany(
            """
            INSERT INTO provider_exceptions (id, provider_id, day, starts, ends, available, reason)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            """,
            [(new_id(), provider_id, *exception) for exception in exceptions],
        )


async def availability(conn: Connection, provider_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT weekday, starts, ends FROM provider_availability WHERE provider_id = %s", (provider_id,)
        )
    ).fetchall()


async def exceptions_on(conn: Connection, provider_id: uuid.UUID, day: date) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT starts, ends, available FROM provider_exceptions WHERE provider_id = %s AND day = %s",
            (provider_id, day),
        )
    ).fetchall()


_BLOCKING = "(status = 'confirmed' OR (status = 'held' AND hold_expires_at > %(now)s))"
"""The bookings that block their span (the same rule as the ``bookings_no_overlap`` trigger)."""


async def blocking_between(
    conn: Connection, provider_id: uuid.UUID, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Bookings whose blocked span meets ``[start, end)``, with what decides if an emergency may take it."""
    return await (
        await conn.execute(
            f"""
            SELECT id, status, emergency, blocked_from, blocked_until FROM bookings
            WHERE provider_id = %(p)s AND blocked_from < %(end)s AND blocked_until > %(start)s
              AND {_BLOCKING}
            """,
            {"p": provider_id, "start": start, "end": end, "now": now},
        )
    ).fetchall()


async def lock_preemptible_holds(
    conn: Connection, provider_id: uuid.UUID, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Lock the unexpired normal holds overlapping ``[start, end)``, in id order: lockers cannot deadlock."""
    return await (
        await conn.execute(
            """
            SELECT * FROM bookings
            WHERE provider_id = %(p)s AND blocked_from < %(end)s AND blocked_until > %(start)s
              AND status = 'held' AND hold_expires_at > %(now)s AND NOT emergency
            ORDER BY id FOR UPDATE
            """,
            {"p": provider_id, "start": start, "end": end, "now": now},
        )
    ).fetchall()


async def provider_queue(
    conn: Connection, provider_id: uuid.UUID, statuses: Sequence[str], now: datetime, limit: int
) -> list[dict[str, Any]]:
    """The provider's bookings, emergencies first, then by start; expired holds are left out."""
    return await (
        await conn.execute(
            """
            SELECT * FROM bookings
            WHERE provider_id = %(p)s AND status = ANY(%(statuses)s)
              AND NOT (status = 'held' AND hold_expires_at <= %(now)s)
            ORDER BY emergency DESC, starts_at, id
            LIMIT %(limit)s
            """,
            {"p": provider_id, "statuses": list(statuses), "now": now, "limit": limit},
        )
    ).fetchall()


async def insert_emergency_audit(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO booking_emergency_audit
            (id, booking_id, provider_id, city_id, customer_id, reason, preempted)
        VALUES (%(id)s, %(booking_id)s, %(provider_id)s, %(city_id)s, %(customer_id)s, %(reason)s,
                %(preempted)s)
        """,
        {"id": new_id(), **row},
    )


async def insert_booking(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO bookings
            (id, provider_id, service_id, customer_id, city_id, starts_at, ends_at, blocked_from,
             blocked_until, status, hold_expires_at, price_minor, deposit_minor, currency, linked_order_id,
             emergency, emergency_reason)
        VALUES (%(id)s, %(provider_id)s, %(service_id)s, %(customer_id)s, %(city_id)s, %(starts_at)s,
                %(ends_at)s, %(blocked_from)s, %(blocked_until)s, 'held', %(hold_expires_at)s,
                %(price_minor)s, %(deposit_minor)s, %(currency)s, %(linked_order_id)s, %(emergency)s,
                %(emergency_reason)s)
        """,
        row,
    )


async def get_booking(
    conn: Connection, booking_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    return await (await conn.execute("SELECT * FROM bookings WHERE id = %s" + lock, (booking_id,))).fetchone()


async def update_booking(conn: Connection, booking_id: uuid.UUID, changes: dict[str, Any]) -> None:
    allowed = {
        "status",
        "starts_at",
        "ends_at",
        "blocked_from",
        "blocked_until",
        "deposit_status",
        "deposit_reference",
        "trial_outcome",
        "cancelled_by",
        "cancellation_fee_minor",
    }
    assert set(changes) <= allowed
    assignments = ", ".join(f"{column} = %({column})s" for column in sorted(changes))
    await conn.execute(
        f"UPDATE bookings SET {assignments}, updated_at = now() WHERE id = %(id)s",
        {**changes, "id": booking_id},
    )


async def allowed(conn: Connection, from_status: str, to_status: str, actor_kind: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT 1 FROM booking_status_transitions "
            "WHERE from_status = %s AND to_status = %s AND actor_kind = %s",
            (from_status, to_status, actor_kind),
        )
    ).fetchone()
    return row is not None


async def record_transition(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO booking_status_history
            (id, booking_id, city_id, from_status, to_status, actor_kind, actor_id, reason)
        VALUES (%(id)s, %(booking_id)s, %(city_id)s, %(from_status)s, %(to_status)s, %(actor_kind)s,
                %(actor_id)s, %(reason)s)
        """,
        {"id": new_id(), **row},
    )


async def expired_holds(conn: Connection, now: datetime) -> list[uuid.UUID]:
    rows = await (
        await conn.execute(
            "SELECT id FROM bookings WHERE status = 'held' AND hold_expires_at <= %s ORDER BY id LIMIT 500",
            (now,),
        )
    ).fetchall()
    return [row["id"] for row in rows]


async def trial_order(conn: Connection, order_id: uuid.UUID, customer_id: uuid.UUID) -> dict[str, Any] | None:
    """The customer's merchant order if it holds a try-before-buy product."""
    return await (
        await conn.execute(
            """
            SELECT o.id FROM merchant_orders o
            WHERE o.id = %s AND o.customer_id = %s AND EXISTS (
                SELECT 1 FROM order_items i JOIN products p ON p.id = i.product_id
                WHERE i.order_id = o.id AND p.try_before_buy)
            """,
            (order_id, customer_id),
        )
    ).fetchone()


# --- data rights (the profiles context's export) ---------------------------------------------


async def bookings_of_customer(conn: Connection, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every booking the customer made, with its status history (JSON-ready)."""
    cursor = await conn.execute(
        """
        SELECT to_jsonb(b) || jsonb_build_object('history', coalesce((
                   SELECT jsonb_agg(to_jsonb(h) - 'booking_id' ORDER BY h.at, h.id)
                   FROM booking_status_history h WHERE h.booking_id = b.id), '[]'::jsonb)) AS booking
        FROM bookings b WHERE b.customer_id = %s ORDER BY b.created_at, b.id
        """,
        (customer_id,),
    )
    return [row["booking"] for row in await cursor.fetchall()]
