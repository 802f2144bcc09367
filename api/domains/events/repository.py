"""All SQL of event delivery: the outbox, the PostgreSQL stream, offsets and processed ids."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from api.domains.events.model import Event
from nearx.db import Connection

RELAY_LOCK_KEY = 0x4E454152_58524C59 & 0x7FFFFFFFFFFFFFFF
"""Advisory-lock key held by the one active relay ("NEARXRLY")."""


async def try_relay_lock(conn: Connection) -> bool:
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (RELAY_LOCK_KEY,))).fetchone()
    return bool(row and row["ok"])


async def release_relay_lock(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (RELAY_LOCK_KEY,))


async def unpublished(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest unpublished events, by position.

    No high-water mark: a row whose position is lower than one already published
    (its transaction committed later) is still found, because the filter is
    ``published_at IS NULL``, not ``position > last``.
    """
    return await (
        await conn.execute(
            """
            SELECT position, event_id, event_type, schema_version, aggregate_type, aggregate_id, city_id,
                   payload, occurred_at
            FROM outbox WHERE published_at IS NULL ORDER BY position LIMIT %s
            """,
            (limit,),
        )
    ).fetchall()


async def mark_published(conn: Connection, positions: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET published_at = now() WHERE position = ANY(%s) AND published_at IS NULL",
        (list(positions),),
    )


async def append_to_stream(conn: Connection, events: Sequence[Event]) -> int:
    """Append, in one statement, the events the stream has not seen (by id); returns how many were new.

    ``seq`` continues from the current maximum in the batch's order. Only the relay
    holding the relay lock writes here, so numbering cannot race and stays gapless.
    """
    if not events:
        return 0
    cursor = await conn.execute(
        """
        WITH incoming AS (
            SELECT * FROM unnest(%(ids)s::uuid[], %(types)s::text[], %(versions)s::int[],
                                 %(agg_types)s::text[], %(agg_ids)s::uuid[], %(cities)s::text[],
                                 %(payloads)s::jsonb[], %(occurred)s::timestamptz[])
                WITH ORDINALITY AS t (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                                      city_id, payload, occurred_at, ord)
        ),
        fresh AS (
            SELECT * FROM incoming i
            WHERE NOT EXISTS (SELECT 1 FROM event_stream s WHERE s.event_id = i.event_id)
        )
        INSERT INTO event_stream (seq, event_id, event_type, schema_version, aggregate_type, aggregate_id,
                                  city_id, payload, occurred_at)
        SELECT (SELECT coalesce(max(seq), 0) FROM event_stream) + row_number() OVER (ORDER BY ord),
               event_id, event_type, schema_version, aggregate_type, aggregate_id, city_id, payload,
               occurred_at
        FROM fresh
        """,
        {
            "ids": [e.event_id for e in events],
            "types": [e.event_type for e in events],
            "versions": [e.schema_version for e in events],
            "agg_types": [e.aggregate_type for e in events],
            "agg_ids": [e.aggregate_id for e in events],
            "cities": [e.city_id for e in events],
            "payloads": [Jsonb(e.payload) for e in events],
            "occurred": [e.occurred_at for e in events],
        },
    )
    return cursor.rowcount


async def notify_stream(conn: Connection) -> None:
    await conn.execute("SELECT pg_notify('nearx_events', '')")


async def stream_after(conn: Connection, seq: int, limit: int) -> list[dict[str, Any]]:
    return await (
        await conn.execute("SELECT * FROM event_stream WHERE seq > %s ORDER BY seq LIMIT %s", (seq, limit))
    ).fetchall()


async def lock_offset(conn: Connection, consumer: str) -> int:
    """The consumer's offset, locked for this transaction (one poller per consumer at a time)."""
    await conn.execute(
        "INSERT INTO event_consumer_offsets (consumer) VALUES (%s) ON CONFLICT DO NOTHING", (consumer,)
    )
    row = await (
        await conn.execute(
            "SELECT seq FROM event_consumer_offsets WHERE consumer = %s FOR UPDATE", (consumer,)
        )
    ).fetchone()
    assert row is not None
    return int(row["seq"])


async def set_offset(conn: Connection, consumer: str, seq: int) -> None:
    await conn.execute(
        "UPDATE event_consumer_offsets SET seq = %s, updated_at = now() WHERE consumer = %s", (seq, consumer)
    )


async def claim_processed(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """Record that ``consumer`` processes ``event_id``; ``False`` when it already did."""
    cursor = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (consumer, event_id),
    )
    return cursor.rowcount == 1
