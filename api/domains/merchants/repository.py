"""All SQL of the merchants context."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, time
from typing import Any

from psycopg.types.json import Jsonb

from nearx.db import Connection
from nearx.ids import new_id


async def insert_merchant(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO merchants (id, city_id, kind, category, name, owner_user_id, lat, lng, h3_r7, h3_r9,
                               delivery_radius_m, prep_time_min, eco_packaging, documents)
        VALUES (%(id)s, %(city_id)s, %(kind)s, %(category)s, %(name)s, %(owner_user_id)s, %(lat)s, %(lng)s,
                %(h3_r7)s, %(h3_r9)s, %(delivery_radius_m)s, %(prep_time_min)s, %(eco_packaging)s,
                %(documents)s)
        """,
        {**row, "documents": Jsonb(row["documents"])},
    )


async def get_merchant(
    conn: Connection, merchant_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    return await (
        await conn.execute("SELECT * FROM merchants WHERE id = %s" + lock, (merchant_id,))
    ).fetchone()


async def list_approved(
    conn: Connection, *, city_id: str | None, after: uuid.UUID | None, limit: int
) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT * FROM merchants
            WHERE status = 'approved' AND (%(city)s::text IS NULL OR city_id = %(city)s)
              AND (%(after)s::uuid IS NULL OR id > %(after)s)
            ORDER BY id LIMIT %(limit)s
            """,
            {"city": city_id, "after": after, "limit": limit},
        )
    ).fetchall()


async def is_transition_allowed(conn: Connection, from_status: str, to_status: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT 1 FROM merchant_status_transitions WHERE from_status = %s AND to_status = %s",
            (from_status, to_status),
        )
    ).fetchone()
    return row is not None


async def set_status(conn: Connection, merchant_id: uuid.UUID, status: str) -> None:
    await conn.execute(
        "UPDATE merchants SET status = %s, updated_at = now() WHERE id = %s", (status, merchant_id)
    )


async def record_status(
    conn: Connection,
    *,
    merchant_id: uuid.UUID,
    city_id: str,
    from_status: str | None,
    to_status: str,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO merchant_status_history
            (id, merchant_id, city_id, from_status, to_status, actor_id, reason)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (new_id(), merchant_id, city_id, from_status, to_status, actor_id, reason),
    )


async def status_history(conn: Connection, merchant_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT * FROM merchant_status_history WHERE merchant_id = %s ORDER BY at, id", (merchant_id,)
        )
    ).fetchall()


async def update_settings(conn: Connection, merchant_id: uuid.UUID, changes: dict[str, Any]) -> None:
    allowed = {"delivery_radius_m", "prep_time_min", "eco_packaging", "paused"}
    assert set(changes) <= allowed
    if not changes:
        return
    assignments = ", ".join(f"{column} = %({column})s" for column in sorted(changes))
    await conn.execute(
        f"UPDATE merchants SET {assignments}, updated_at = now() WHERE id = %(id)s",
        {**changes, "id": merchant_id},
    )


async def staff_role(conn: Connection, merchant_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    row = await (
        await conn.execute(
            "SELECT role FROM merchant_staff WHERE merchant_id = %s AND user_id = %s", (merchant_id, user_id)
        )
    ).fetchone()
    return None if row is None else str(row["role"])


async def upsert_staff(
    conn: Connection, merchant_id: uuid.UUID, user_id: uuid.UUID, role: str, added_by: uuid.UUID | None
) -> None:
    await conn.execute(
        """
        INSERT INTO merchant_staff (merchant_id, user_id, role, added_by) VALUES (%s, %s, %s, %s)
        ON CONFLICT (merchant_id, user_id) DO UPDATE SET role = EXCLUDED.role, added_by = EXCLUDED.added_by
        """,
        (merchant_id, user_id, role, added_by),
    )


async def delete_staff(conn: Connection, merchant_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    cursor = await conn.execute(
        "DELETE FROM merchant_staff WHERE merchant_id = %s AND user_id = %s", (merchant_id, user_id)
    )
    return cursor.rowcount > 0


async def list_staff(conn: Connection, merchant_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT user_id, role FROM merchant_staff WHERE merchant_id = %s ORDER BY added_at, user_id",
            (merchant_id,),
        )
    ).fetchall()


async def user_exists(conn: Connection, user_id: uuid.UUID) -> bool:
    row = await (await conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,))).fetchone()
    return row is not None


async def replace_hours(
    conn: Connection,
    merchant_id: uuid.UUID,
    hours: Sequence[tuple[int, time, time]],
    holidays: Sequence[tuple[date, str | None]],
) -> None:
    await conn.execute("DELETE FROM merchant_hours WHERE merchant_id = %s", (merchant_id,))
    await conn.execute("DELETE FROM merchant_holidays WHERE merchant_id = %s", (merchant_id,))
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO merchant_hours (merchant_id, weekday, opens, closes) VALUES (%s, %s, %s, %s)",
            [(merchant_id, *interval) for interval in hours],
        )
        await cursor.executemany(
            "INSERT INTO merchant_holidays (merchant_id, day, reason) VALUES (%s, %s, %s)",
            [(merchant_id, *holiday) for holiday in holidays],
        )


async def hours_of(
    conn: Connection, merchant_ids: Sequence[uuid.UUID]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Weekly intervals and holidays of several merchants (one round trip each)."""
    hours = await (
        await conn.execute(
            "SELECT merchant_id, weekday, opens, closes FROM merchant_hours WHERE merchant_id = ANY(%s)",
            (list(merchant_ids),),
        )
    ).fetchall()
    holidays = await (
        await conn.execute(
            "SELECT merchant_id, day FROM merchant_holidays WHERE merchant_id = ANY(%s)",
            (list(merchant_ids),),
        )
    ).fetchall()
    return hours, holidays


async def city_timezones(conn: Connection) -> dict[str, str]:
    rows = await (await conn.execute("SELECT id, timezone FROM cities")).fetchall()
    return {row["id"]: row["timezone"] for row in rows}


# --- data rights (the profiles context's export and erasure) ---------------------------------


async def applications_of(conn: Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """Merchants and providers the user applied to run, with their approval history (JSON-ready)."""
    cursor = await conn.execute(
        """
        SELECT jsonb_build_object(
                   'id', m.id, 'city_id', m.city_id, 'kind', m.kind, 'category', m.category,
                   'name', m.name, 'status', m.status, 'lat', m.lat, 'lng', m.lng,
                   'documents', m.documents, 'created_at', m.created_at,
                   'history', coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'from_status', h.from_status, 'to_status', h.to_status,
                                  'reason', h.reason, 'at', h.at) ORDER BY h.at, h.id)
                       FROM merchant_status_history h WHERE h.merchant_id = m.id), '[]'::jsonb)
               ) AS application
        FROM merchants m WHERE m.owner_user_id = %s ORDER BY m.created_at, m.id
        """,
        (user_id,),
    )
    return [row["application"] for row in await cursor.fetchall()]


async def forget_documents(conn: Connection, user_id: uuid.UUID) -> int:
    """Drop the document keys of the merchants the user owns (their files are erased with the account)."""
    cursor = await conn.execute(
        "UPDATE merchants SET documents = '[]', updated_at = now() "
        "WHERE owner_user_id = %s AND documents <> '[]'",
        (user_id,),
    )
    return cursor.rowcount
