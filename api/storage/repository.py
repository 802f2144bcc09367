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
