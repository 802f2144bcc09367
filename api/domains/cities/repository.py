"""SQL for the cities table (read-only: cities are data, changed by migrations)."""

from __future__ import annotations

from typing import Any

from nearx.db import Connection

_COLUMNS = "id, name, country, currency, timezone, min_lat, min_lng, max_lat, max_lng, boundary"


async def list_after(conn: Connection, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    """Cities ordered by id, starting after ``after_id`` (keyset pagination)."""
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM cities WHERE %(after)s::text IS NULL OR id > %(after)s "
        "ORDER BY id LIMIT %(limit)s",
        {"after": after_id, "limit": limit},
    )
    return await cursor.fetchall()


async def containing_bbox(conn: Connection, *, lat: float, lng: float) -> list[dict[str, Any]]:
    """Cities whose bounding box holds the point: the cheap prefilter before the exact polygon test."""
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM cities "
        "WHERE %(lat)s BETWEEN min_lat AND max_lat AND %(lng)s BETWEEN min_lng AND max_lng ORDER BY id",
        {"lat": lat, "lng": lng},
    )
    return await cursor.fetchall()
