"""SQL of the demo seeder: which simulated entities are already in the platform."""

from __future__ import annotations

import uuid

from nearx.db import Connection


async def seeded(conn: Connection, city_id: str) -> dict[str, uuid.UUID]:
    """Every entity of ``city_id`` seeded so far: source id to the platform id it became."""
    rows = await (
        await conn.execute("SELECT source_id, platform_id FROM demo_entities WHERE city_id = %s", (city_id,))
    ).fetchall()
    return {row["source_id"]: row["platform_id"] for row in rows}


async def remember(conn: Connection, city_id: str, source_id: str, kind: str, platform_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO demo_entities (city_id, source_id, kind, platform_id) VALUES (%s, %s, %s, %s)",
        (city_id, source_id, kind, platform_id),
    )
