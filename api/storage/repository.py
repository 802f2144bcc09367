"""All SQL of stored-object metadata."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from nearx.db import Connection


async def insert(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO stored_objects (key, owner_id, purpose, content_type, size_bytes, sha256)
        VALUES (%(key)s, %(owner_id)s, %(purpose)s, %(content_type)s, %(size_bytes)s, %(sha256)s)
        """,
        row,
    )


async def get(conn: Connection, key: str) -> dict[str, Any] | None:
    return await (await conn.execute("SELECT * FROM stored_objects WHERE key = %s", (key,))).fetchone()


async def owned(conn: Connection, owner_id: uuid.UUID, keys: Sequence[str], purpose: str) -> set[str]:
    rows = await (
        await conn.execute(
            "SELECT key FROM stored_objects WHERE owner_id = %s AND purpose = %s AND key = ANY(%s)",
            (owner_id, purpose, list(keys)),
        )
    ).fetchall()
    return {row["key"] for row in rows}


async def owned_by(conn: Connection, owner_id: uuid.UUID) -> list[dict[str, Any]]:
    """Metadata of everything the user uploaded, oldest first (data export)."""
    cursor = await conn.execute(
        "SELECT key, purpose, content_type, size_bytes, sha256, created_at FROM stored_objects "
        "WHERE owner_id = %s ORDER BY created_at, key",
        (owner_id,),
    )
    return await cursor.fetchall()


async def delete_owned(conn: Connection, owner_id: uuid.UUID, purpose: str) -> list[str]:
    """Delete the metadata of the user's objects of one purpose; returns their keys."""
    cursor = await conn.execute(
        "DELETE FROM stored_objects WHERE owner_id = %s AND purpose = %s RETURNING key", (owner_id, purpose)
    )
    return [row["key"] for row in await cursor.fetchall()]
