"""Incremental extracts from a real PostgreSQL: only new rows, cursor stored, absent tables skipped."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import polars as pl
import psycopg

from pipelines.extract import ExtractTable, extract_table, load_cursors, outbox_position

USERS = ExtractTable("users", ("updated_at", "id"))
OUTBOX = ExtractTable("outbox", ("position",))


def _append_event(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, payload) "
        "VALUES (%s, 'user.created', 'user', %s, %s)",
        (uuid.uuid4(), uuid.uuid4(), json.dumps({"n": 1})),
    )


def test_extracts_are_incremental(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("INSERT INTO users (id, display_name) VALUES (%s, 'a')", (uuid.uuid4(),))
            _append_event(conn)
        first = extract_table(conn, tmp_path, USERS)
        assert first.rows == 3
        assert first.path is not None
        assert extract_table(conn, tmp_path, USERS).rows == 0  # nothing changed since
        changed = conn.execute(
            "UPDATE users SET updated_at = now() + interval '1 minute' "
            "WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1) RETURNING id"
        ).fetchone()
        assert changed is not None
        second = extract_table(conn, tmp_path, USERS)
        assert second.rows == 1
        assert second.path is not None
        assert pl.read_parquet(second.path)["id"].to_list() == [str(changed[0])]

        assert extract_table(conn, tmp_path, OUTBOX).rows == 3
        _append_event(conn)
        batch = extract_table(conn, tmp_path, OUTBOX)
        assert batch.rows == 1
        assert batch.path is not None
        assert load_cursors(tmp_path)["outbox"] == [str(outbox_position(conn))]
        assert json.loads(pl.read_parquet(batch.path)["payload"][0]) == {"n": 1}


def test_tables_not_yet_migrated_are_skipped(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        result = extract_table(conn, tmp_path, ExtractTable("not_a_table_yet", ("updated_at", "id")))
    assert result.rows == 0
    assert result.path is None
