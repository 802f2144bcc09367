"""All SQL of the profile context: users' profile fields, preferences, consents, addresses."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import sql

from nearx.db import Connection

H3_COLUMNS: Mapping[int, str] = {7: "h3_r7", 9: "h3_r9"}
"""The H3 resolutions the addresses table has a column for (see 0010_profiles.sql)."""

_USER_FIELDS = frozenset({"display_name", "locale"})
_PROFILE_FIELDS = frozenset(
    {"eco_first", "price_sensitivity", "dietary_tags", "allergens", "favourite_merchants"}
)
_ADDRESS_COLUMNS = "id, user_id, city_id, label, line, lat, lng, h3_r7, h3_r9, created_at, updated_at"


# --- users and profiles --------------------------------------------------------------------------


async def get_user(conn: Connection, user_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    """The user row; ``lock`` takes a row lock so concurrent patches and erasure serialise."""
    query = (
        "SELECT id, phone, email, display_name, locale, status, created_at, updated_at "
        "FROM users WHERE id = %s"
    )
    cursor = await conn.execute(query + (" FOR UPDATE" if lock else ""), (user_id,))
    return await cursor.fetchone()


async def get_roles(conn: Connection, user_id: uuid.UUID) -> list[str]:
    cursor = await conn.execute("SELECT role FROM user_roles WHERE user_id = %s ORDER BY role", (user_id,))
    return [row["role"] for row in await cursor.fetchall()]


async def get_profile(conn: Connection, user_id: uuid.UUID) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT eco_first, price_sensitivity, dietary_tags, allergens, favourite_merchants "
        "FROM profiles WHERE user_id = %s",
        (user_id,),
    )
    return await cursor.fetchone()


async def update_user(conn: Connection, user_id: uuid.UUID, fields: Mapping[str, Any], now: datetime) -> None:
    """Set ``display_name`` and/or ``locale``."""
    unknown = set(fields) - _USER_FIELDS
    assert not unknown, f"not user profile fields: {unknown}"
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in fields
    )
    await conn.execute(
        sql.SQL("UPDATE users SET {}, updated_at = %(now)s WHERE id = %(id)s").format(assignments),
        {**fields, "now": now, "id": user_id},
    )


async def upsert_profile(
    conn: Connection, user_id: uuid.UUID, fields: Mapping[str, Any], now: datetime
) -> None:
    """Create the profile row with defaults if missing, then set ``fields``."""
    unknown = set(fields) - _PROFILE_FIELDS
    assert not unknown, f"not profile fields: {unknown}"
    columns = [sql.Identifier(name) for name in fields]
    values = [sql.Placeholder(name) for name in fields]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(column) for column in columns]
    query = sql.SQL(
        "INSERT INTO profiles (user_id, updated_at{cols}) VALUES (%(id)s, %(now)s{vals}) "
        "ON CONFLICT (user_id) DO UPDATE SET updated_at = EXCLUDED.updated_at{updates}"
    ).format(
        cols=sql.SQL("").join(sql.SQL(", ") + column for column in columns),
        vals=sql.SQL("").join(sql.SQL(", ") + value for value in values),
        updates=sql.SQL("").join(sql.SQL(", ") + update for update in updates),
    )
    await conn.execute(query, {**fields, "id": user_id, "now": now})


async def erase_user(conn: Connection, user_id: uuid.UUID, now: datetime) -> None:
    """Null the user's PII and mark them deleted; the row stays for orders and ledgers that point at it."""
    await conn.execute(
        "UPDATE users SET phone = NULL, email = NULL, display_name = NULL, locale = DEFAULT, "
        "status = 'deleted', updated_at = %(now)s WHERE id = %(id)s",
        {"id": user_id, "now": now},
    )
    await conn.execute(
        "INSERT INTO profiles (user_id, deleted_at, updated_at) VALUES (%(id)s, %(now)s, %(now)s) "
        "ON CONFLICT (user_id) DO UPDATE SET eco_first = DEFAULT, price_sensitivity = DEFAULT, "
        "dietary_tags = DEFAULT, allergens = DEFAULT, favourite_merchants = DEFAULT, "
        "deleted_at = EXCLUDED.deleted_at, updated_at = EXCLUDED.updated_at",
        {"id": user_id, "now": now},
    )


# --- consents ------------------------------------------------------------------------------------


async def consent_summary(conn: Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """Per purpose: the current state (latest event) and the latest grant and withdrawal times."""
    cursor = await conn.execute(
        """
        SELECT purpose,
               (array_agg(granted ORDER BY recorded_at DESC, id DESC))[1] AS granted,
               max(recorded_at) FILTER (WHERE granted) AS granted_at,
               max(recorded_at) FILTER (WHERE NOT granted) AS withdrawn_at
        FROM consent_events WHERE user_id = %s GROUP BY purpose
        """,
        (user_id,),
    )
    return await cursor.fetchall()


async def consent_history(conn: Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT purpose, granted, recorded_at, source FROM consent_events WHERE user_id = %s "
        "ORDER BY recorded_at, id",
        (user_id,),
    )
    return await cursor.fetchall()


async def record_consent(
    conn: Connection,
    *,
    event_id: uuid.UUID,
    user_id: uuid.UUID,
    purpose: str,
    granted: bool,
    now: datetime,
    source: str,
) -> None:
    await conn.execute(
        "INSERT INTO consent_events (id, user_id, purpose, granted, recorded_at, source) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (event_id, user_id, purpose, granted, now, source),
    )


# --- addresses -----------------------------------------------------------------------------------


def _h3_values(cells: Mapping[int, str]) -> dict[str, str | None]:
    missing = set(cells) - set(H3_COLUMNS)
    if missing:
        raise RuntimeError(f"addresses has no column for H3 resolution(s) {sorted(missing)}: add a migration")
    return {column: cells.get(resolution) for resolution, column in H3_COLUMNS.items()}


async def insert_address(
    conn: Connection,
    *,
    address_id: uuid.UUID,
    user_id: uuid.UUID,
    city_id: str,
    label: str | None,
    line: str,
    lat: float,
    lng: float,
    cells: Mapping[int, str],
    now: datetime,
) -> dict[str, Any]:
    cursor = await conn.execute(
        f"""
        INSERT INTO addresses (id, user_id, city_id, label, line, lat, lng, h3_r7, h3_r9,
                               created_at, updated_at)
        VALUES (%(id)s, %(user_id)s, %(city_id)s, %(label)s, %(line)s, %(lat)s, %(lng)s,
                %(h3_r7)s, %(h3_r9)s, %(now)s, %(now)s)
        RETURNING {_ADDRESS_COLUMNS}
        """,
        {
            "id": address_id,
            "user_id": user_id,
            "city_id": city_id,
            "label": label,
            "line": line,
            "lat": lat,
            "lng": lng,
            "now": now,
            **_h3_values(cells),
        },
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def get_address(
    conn: Connection, *, user_id: uuid.UUID, address_id: uuid.UUID, lock: bool = False
) -> dict[str, Any] | None:
    """The address if it exists AND belongs to ``user_id``: others' addresses look absent."""
    cursor = await conn.execute(
        f"SELECT {_ADDRESS_COLUMNS} FROM addresses WHERE id = %s AND user_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (address_id, user_id),
    )
    return await cursor.fetchone()


async def list_addresses(
    conn: Connection, *, user_id: uuid.UUID, after_id: uuid.UUID | None, limit: int | None
) -> list[dict[str, Any]]:
    """The user's addresses by id (UUIDv7: oldest first) after ``after_id``; all when ``limit`` is None."""
    cursor = await conn.execute(
        f"SELECT {_ADDRESS_COLUMNS} FROM addresses "
        "WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s) "
        "ORDER BY id LIMIT %(limit)s",
        {"user_id": user_id, "after": after_id, "limit": limit},
    )
    return await cursor.fetchall()


async def update_address(
    conn: Connection,
    *,
    address_id: uuid.UUID,
    label: str | None,
    line: str | None,
    lat: float,
    lng: float,
    city_id: str,
    cells: Mapping[int, str],
    now: datetime,
) -> dict[str, Any]:
    cursor = await conn.execute(
        f"""
        UPDATE addresses SET label = %(label)s, line = %(line)s, lat = %(lat)s, lng = %(lng)s,
               city_id = %(city_id)s, h3_r7 = %(h3_r7)s, h3_r9 = %(h3_r9)s, updated_at = %(now)s
        WHERE id = %(id)s
        RETURNING {_ADDRESS_COLUMNS}
        """,
        {
            "id": address_id,
            "label": label,
            "line": line,
            "lat": lat,
            "lng": lng,
            "city_id": city_id,
            "now": now,
            **_h3_values(cells),
        },
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def delete_address(
    conn: Connection, *, user_id: uuid.UUID, address_id: uuid.UUID
) -> dict[str, Any] | None:
    """Delete the user's own address; ``None`` when there is no such address of theirs."""
    cursor = await conn.execute(
        "DELETE FROM addresses WHERE id = %s AND user_id = %s RETURNING id, city_id, h3_r7",
        (address_id, user_id),
    )
    return await cursor.fetchone()


async def erase_addresses(conn: Connection, user_id: uuid.UUID, now: datetime) -> int:
    """Drop label and line, coarsen the point to 2 decimals (about 1 km) and forget the fine H3 cell.

    The rows stay (orders may reference them) with their city and coarse cell for aggregate statistics.
    """
    cursor = await conn.execute(
        "UPDATE addresses SET label = NULL, line = NULL, lat = round(lat::numeric, 2), "
        "lng = round(lng::numeric, 2), h3_r9 = NULL, erased_at = %(now)s, updated_at = %(now)s "
        "WHERE user_id = %(id)s AND erased_at IS NULL",
        {"id": user_id, "now": now},
    )
    return cursor.rowcount
