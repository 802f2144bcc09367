"""All SQL of the couriers context."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from nearx.db import Connection

Row = dict[str, Any]

_COURIER_COLUMNS = """id, user_id, city_id, status, shift, mode, bag_slots, max_weight_g, documents,
    vehicle_plate, idle_since, created_at, updated_at"""


async def city_exists(conn: Connection, city_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM cities WHERE id = %s", (city_id,))
    return await cur.fetchone() is not None


async def city_country(conn: Connection, city_id: str) -> str:
    cur = await conn.execute("SELECT country FROM cities WHERE id = %s", (city_id,))
    row = await cur.fetchone()
    assert row is not None
    return str(row["country"]).strip()


async def insert_courier(conn: Connection, row: Row) -> Row:
    cur = await conn.execute(
        f"""
        INSERT INTO couriers (id, user_id, city_id, mode, bag_slots, max_weight_g, documents, vehicle_plate)
        VALUES (%(id)s, %(user_id)s, %(city_id)s, %(mode)s, %(bag_slots)s, %(max_weight_g)s,
                %(documents)s, %(vehicle_plate)s)
        ON CONFLICT (user_id) DO NOTHING
        RETURNING {_COURIER_COLUMNS}
        """,
        {**row, "documents": Jsonb(row["documents"])},
    )
    created = await cur.fetchone()
    return dict(created) if created else {}


async def by_user(conn: Connection, user_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_COURIER_COLUMNS} FROM couriers WHERE user_id = %s" + (" FOR UPDATE" if lock else ""),
        (user_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def by_id(conn: Connection, courier_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_COURIER_COLUMNS} FROM couriers WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (courier_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def list_by_status(
    conn: Connection, status: str | None, after: uuid.UUID | None, limit: int
) -> list[Row]:
    cur = await conn.execute(
        f"""
        SELECT {_COURIER_COLUMNS} FROM couriers
        WHERE (%(status)s::text IS NULL OR status = %(status)s)
          AND (%(after)s::uuid IS NULL OR id > %(after)s)
        ORDER BY id LIMIT %(limit)s
        """,
        {"status": status, "after": after, "limit": limit},
    )
    return [dict(row) for row in await cur.fetchall()]


async def allowed(conn: Connection, machine: str, from_state: str, to_state: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM courier_transitions WHERE machine = %s AND from_state = %s AND to_state = %s",
        (machine, from_state, to_state),
    )
    return await cur.fetchone() is not None


async def set_state(conn: Connection, courier_id: uuid.UUID, column: str, value: str, now: datetime) -> Row:
    """Move ``status`` or ``shift``; going online starts the idle clock, leaving it stops it."""
    assert column in ("status", "shift")
    idle = (
        "idle_since = CASE WHEN %(value)s = 'online' THEN %(now)s ELSE NULL END," if column == "shift" else ""
    )
    cur = await conn.execute(
        sql.SQL(
            f"UPDATE couriers SET {{column}} = %(value)s, {idle} updated_at = %(now)s WHERE id = %(id)s "
            f"RETURNING {_COURIER_COLUMNS}"
        ).format(column=sql.Identifier(column)),
        {"value": value, "now": now, "id": courier_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def record_transition(conn: Connection, row: Row) -> None:
    await conn.execute(
        """
        INSERT INTO courier_history
            (id, courier_id, city_id, machine, from_state, to_state, actor_id, reason, at)
        VALUES (%(id)s, %(courier_id)s, %(city_id)s, %(machine)s, %(from_state)s, %(to_state)s,
                %(actor_id)s, %(reason)s, %(at)s)
        """,
        row,
    )


async def history(conn: Connection, courier_id: uuid.UUID) -> list[Row]:
    cur = await conn.execute(
        "SELECT machine, from_state, to_state, actor_id, reason, at FROM courier_history "
        "WHERE courier_id = %s ORDER BY at, id",
        (courier_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def position(conn: Connection, courier_id: uuid.UUID) -> Row | None:
    cur = await conn.execute(
        "SELECT lat, lng, accuracy_m, fixed_at, h3_r7, h3_r9 FROM courier_positions WHERE courier_id = %s",
        (courier_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def upsert_position(conn: Connection, row: Row) -> None:
    """Move the latest position forward only (a late batch never moves it back)."""
    await conn.execute(
        """
        INSERT INTO courier_positions
            (courier_id, city_id, lat, lng, accuracy_m, speed_mps, fixed_at, h3_r7, h3_r9)
        VALUES (%(courier_id)s, %(city_id)s, %(lat)s, %(lng)s, %(accuracy_m)s, %(speed_mps)s, %(fixed_at)s,
                %(h3_r7)s, %(h3_r9)s)
        ON CONFLICT (courier_id) DO UPDATE SET
            lat = excluded.lat, lng = excluded.lng, accuracy_m = excluded.accuracy_m,
            speed_mps = excluded.speed_mps, fixed_at = excluded.fixed_at, h3_r7 = excluded.h3_r7,
            h3_r9 = excluded.h3_r9, city_id = excluded.city_id, updated_at = now()
        WHERE courier_positions.fixed_at < excluded.fixed_at
        """,
        row,
    )


def track_partition_name(day: date) -> str:
    return f"courier_track_{day:%Y%m%d}"


async def ensure_track_partitions(conn: Connection, days: set[date]) -> None:
    """Create missing daily partitions; an advisory lock per day serialises racing requests."""
    for day in sorted(days):
        name = track_partition_name(day)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (name,))
        found = await cur.fetchone()
        if found and found["present"]:
            continue
        start = datetime.combine(day, time.min, tzinfo=UTC)
        await conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF courier_track FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name), sql.Literal(start), sql.Literal(start + timedelta(days=1))
            )
        )


async def append_track(conn: Connection, rows: list[Row]) -> None:
    """Store fixes (a re-sent fix is the same fix: the first copy wins)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO courier_track (courier_id, fixed_at, city_id, lat, lng, accuracy_m, speed_mps, flags)
            VALUES (%(courier_id)s, %(fixed_at)s, %(city_id)s, %(lat)s, %(lng)s, %(accuracy_m)s,
                    %(speed_mps)s, %(flags)s)
            ON CONFLICT (courier_id, fixed_at) DO NOTHING
            """,
            rows,
        )


async def online_in_city(conn: Connection, city_id: str) -> list[Row]:
    """Couriers on shift with a known position: the supply side of a dispatch round."""
    cur = await conn.execute(
        """
        SELECT c.id, c.mode, c.bag_slots, c.idle_since, p.lat, p.lng, p.fixed_at
        FROM couriers c JOIN courier_positions p ON p.courier_id = c.id
        WHERE c.city_id = %s AND c.shift = 'online' AND c.status = 'approved'
        ORDER BY c.id
        """,
        (city_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


# --- data rights (export and erasure of a courier's own data) --------------------------------


async def track_of(conn: Connection, courier_id: uuid.UUID) -> list[Row]:
    """Every fix the courier sent, oldest first (the day partitions are scanned by courier key)."""
    cur = await conn.execute(
        "SELECT fixed_at, lat, lng, accuracy_m, speed_mps, flags, received_at FROM courier_track "
        "WHERE courier_id = %s ORDER BY fixed_at",
        (courier_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def erase_whereabouts(conn: Connection, courier_id: uuid.UUID) -> int:
    """Forget the live position, round the kept track to 2 decimals (about 1 km, enough for city
    statistics) and drop the identity documents and plate; returns the track rows coarsened."""
    await conn.execute("DELETE FROM courier_positions WHERE courier_id = %s", (courier_id,))
    await conn.execute(
        "UPDATE couriers SET documents = '[]', vehicle_plate = NULL, updated_at = now() WHERE id = %s",
        (courier_id,),
    )
    cur = await conn.execute(
        "UPDATE courier_track SET lat = round(lat::numeric, 2), lng = round(lng::numeric, 2) "
        "WHERE courier_id = %s",
        (courier_id,),
    )
    return cur.rowcount
