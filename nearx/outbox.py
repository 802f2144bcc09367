"""The transactional outbox: events are written in the same transaction as the change.

A relay publishes them later, at least once and in order per aggregate, so a
committed change always has its event and a rolled-back one never does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from nearx.ids import new_id

_EVENT_TYPE = re.compile(r"^[a-z_]+\.[a-z_]+$")


async def append_event(
    conn: AsyncConnection[Any],
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID,
    payload: Mapping[str, Any] | msgspec.Struct,
    city_id: str | None = None,
    schema_version: int = 1,
    standalone: bool = False,
) -> uuid.UUID:
    """Write one ``<entity>.<verb>`` event; call it inside the transaction that made the change.

    ``standalone=True`` is for an event that *is* the whole change (``match.served`` logs what
    was shown and writes nothing else): its one INSERT is atomic on its own, so it may run in
    autocommit and save the BEGIN and COMMIT round trips on a hot path.
    """
    if not standalone and conn.info.transaction_status == TransactionStatus.IDLE:
        raise RuntimeError("append_event must run inside the transaction that made the change")
    row = event_row(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=payload,
        city_id=city_id,
        schema_version=schema_version,
    )
    await conn.execute(INSERT_EVENT, row)
    return row[0]


INSERT_EVENT = """
    INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, aggregate_id,
                        city_id, payload)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
"""One outbox row; the parameters are an :func:`event_row`."""

EventRow = tuple[uuid.UUID, str, int, str, uuid.UUID, str | None, Jsonb]


def event_row(
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID,
    payload: Mapping[str, Any] | msgspec.Struct,
    city_id: str | None = None,
    schema_version: int = 1,
) -> EventRow:
    """The parameters of :data:`INSERT_EVENT` for one new event (its id first), name checked."""
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type {event_type!r} is not '<entity>.<verb>'")
    body = msgspec.to_builtins(payload)
    return (new_id(), event_type, schema_version, aggregate_type, aggregate_id, city_id, Jsonb(body))
