"""Incremental extracts of the live PostgreSQL tables into the lake, with a stored cursor.

The table list is data: adding a table the platform grows is one ``ExtractTable``
line. Each run reads rows strictly after the stored cursor (a tuple such as
``(updated_at, id)`` so equal timestamps never lose a row), writes them as one new
Parquet batch, and only then advances the cursor: a crash re-extracts, never skips.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import polars as pl
import psycopg
from psycopg import sql


@dataclass(frozen=True, slots=True)
class ExtractTable:
    name: str
    cursor: tuple[str, ...]
    """Columns whose tuple strictly increases for new or changed rows."""


EXTRACT_TABLES: tuple[ExtractTable, ...] = (
    ExtractTable("cities", ("created_at", "id")),
    ExtractTable("users", ("updated_at", "id")),
    ExtractTable("outbox", ("position",)),
    ExtractTable("merchants", ("updated_at", "id")),
    ExtractTable("products", ("updated_at", "id")),
    ExtractTable("orders", ("created_at", "id")),  # immutable header; status lives in merchant_orders
    ExtractTable("merchant_orders", ("updated_at", "id")),
    ExtractTable("order_refunds", ("created_at", "id")),
    ExtractTable("order_status_history", ("at", "id")),  # append-only, like delivery_history
    ExtractTable("couriers", ("updated_at", "id")),
    ExtractTable("deliveries", ("updated_at", "id")),
    ExtractTable("delivery_history", ("at", "id")),
    ExtractTable("payment_intents", ("updated_at", "id")),
    # what the lake reads of an assessment never changes; a review's verdict comes as checkout.reviewed
    ExtractTable("checkout_fraud_assessments", ("at", "id")),
    ExtractTable("demo_entities", ("seeded_at", "city_id", "source_id")),  # insert-only id map
)
"""Tables absent from the database (not migrated yet) are skipped, so a table can be listed early."""


@dataclass(frozen=True, slots=True)
class ExtractResult:
    table: str
    rows: int
    cursor: list[str] | None
    path: Path | None


def extract_dir(lake: Path, table: str) -> Path:
    return lake / "postgres" / table


def _cursor_file(lake: Path) -> Path:
    return lake / "postgres" / "_cursors.json"


def load_cursors(lake: Path) -> dict[str, list[str]]:
    path = _cursor_file(lake)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_cursor(lake: Path, table: str, cursor: list[str]) -> None:
    cursors = load_cursors(lake) | {table: cursor}
    path = _cursor_file(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cursors, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    """psycopg values Parquet can hold: UUIDs and decimals as text, JSON documents as JSON text."""
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def extract_table(conn: psycopg.Connection[Any], lake: Path, table: ExtractTable) -> ExtractResult:
    """Copy the rows of ``table`` changed since the stored cursor into a new lake batch."""
    types = dict(
        conn.execute(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table.name,),
        ).fetchall()
    )
    stored = load_cursors(lake).get(table.name)
    if not types:  # not migrated yet on this database: nothing to extract, and not an error
        return ExtractResult(table.name, 0, stored, None)
    missing = [column for column in table.cursor if column not in types]
    if missing:
        raise ValueError(f"{table.name}: cursor column(s) {', '.join(missing)} not in the table")
    cursor_cols = sql.SQL(", ").join(sql.Identifier(column) for column in table.cursor)
    where: sql.Composable = sql.SQL("")
    if stored:
        placeholders = sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.Identifier(types[column])) for column in table.cursor
        )
        where = sql.SQL("WHERE ({}) > ({})").format(cursor_cols, placeholders)
    query = sql.SQL("SELECT * FROM {} {} ORDER BY {}").format(sql.Identifier(table.name), where, cursor_cols)
    cur = conn.execute(query, stored or None)
    names = [column.name for column in cur.description or ()]
    rows = [tuple(_plain(value) for value in row) for row in cur.fetchall()]
    if not rows:
        return ExtractResult(table.name, 0, stored, None)
    frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    last = rows[-1]
    new_cursor = [_text(last[names.index(column)]) for column in table.cursor]
    target = extract_dir(lake, table.name) / f"batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, target)
    _save_cursor(lake, table.name, new_cursor)
    return ExtractResult(table.name, frame.height, new_cursor, target)


def outbox_position(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(position), 0) FROM outbox").fetchone()
    return int(row[0]) if row else 0
