from __future__ import annotations

import uuid

import psycopg
import pytest

from nearx.ids import new_id
from nearx.outbox import append_event


async def test_event_is_written_with_the_change(conn: psycopg.AsyncConnection[dict[str, object]]) -> None:
    aggregate = new_id()
    async with conn.transaction():
        await append_event(
            conn, event_type="user.created", aggregate_type="user", aggregate_id=aggregate, payload={"a": 1}
        )
    row = await (
        await conn.execute("SELECT event_type, payload FROM outbox WHERE aggregate_id = %s", (aggregate,))
    ).fetchone()
    assert row == {"event_type": "user.created", "payload": {"a": 1}}


async def _write_event_then_fail(
    conn: psycopg.AsyncConnection[dict[str, object]], aggregate: uuid.UUID
) -> None:
    async with conn.transaction():
        await append_event(
            conn, event_type="user.created", aggregate_type="user", aggregate_id=aggregate, payload={}
        )
        raise RuntimeError("boom")


async def test_rolled_back_change_leaves_no_event(conn: psycopg.AsyncConnection[dict[str, object]]) -> None:
    aggregate = new_id()
    with pytest.raises(RuntimeError, match="boom"):
        await _write_event_then_fail(conn, aggregate)
    count = await (
        await conn.execute("SELECT count(*) AS n FROM outbox WHERE aggregate_id = %s", (aggregate,))
    ).fetchone()
    assert count == {"n": 0}


async def test_events_outside_a_transaction_or_badly_named_are_refused(
    conn: psycopg.AsyncConnection[dict[str, object]],
) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await append_event(
            conn, event_type="user.created", aggregate_type="user", aggregate_id=new_id(), payload={}
        )
    async with conn.transaction():
        with pytest.raises(ValueError, match="entity"):
            await append_event(
                conn, event_type="UserCreated", aggregate_type="user", aggregate_id=new_id(), payload={}
            )


async def test_a_standalone_event_is_written_in_autocommit(
    conn: psycopg.AsyncConnection[dict[str, object]],
) -> None:
    aggregate = new_id()
    await append_event(
        conn,
        event_type="match.served",
        aggregate_type="match",
        aggregate_id=aggregate,
        payload={"impressions": []},
        standalone=True,
    )
    row = await (
        await conn.execute("SELECT event_type, payload FROM outbox WHERE aggregate_id = %s", (aggregate,))
    ).fetchone()
    assert row == {"event_type": "match.served", "payload": {"impressions": []}}
