from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nearx.migrations import migrate, status
from nearx.postgres import drop_database, ensure_database, with_database

MIGRATIONS = Path(__file__).resolve().parents[2] / "api" / "migrations"


@pytest.fixture
def empty_db(pg_admin_url: str) -> Iterator[str]:
    name = f"nearx_empty_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name)
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


def test_migrate_applies_everything_once_and_records_it(empty_db: str) -> None:
    before = status(empty_db, MIGRATIONS)
    assert before
    assert all(state.applied_at is None for state in before)

    applied = migrate(empty_db, MIGRATIONS)
    assert applied == [state.migration_id for state in before]
    assert migrate(empty_db, MIGRATIONS) == []  # twice in a row is a no-op

    after = status(empty_db, MIGRATIONS)
    assert all(state.applied_at is not None and state.applied_at.tzinfo for state in after)


def test_a_failing_migration_leaves_no_trace(empty_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();")
    with pytest.raises(psycopg.Error):
        migrate(empty_db, tmp_path)
    with psycopg.connect(empty_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert "ok_table" in tables
    assert "half_done" not in tables  # the broken migration rolled back as a whole
    assert [s.migration_id for s in status(empty_db, tmp_path) if s.applied_at] == ["0001_ok"]
