"""Shared fixtures: real PostgreSQL for every test that needs a database.

The server is ``NEARX_TEST_DATABASE_URL`` when set (CI points it at the
machine's PostgreSQL), else an embedded pgserver in a temporary directory, so
a fresh machine needs nothing installed. The schema is migrated once into a
template database; each test gets its own copy, so tests never see each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from nearx.migrations import migrate
from nearx.postgres import drop_database, ensure_database, with_database
from nearx.settings import Settings, load_settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "api" / "migrations"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL with rights to create databases on a real PostgreSQL server."""
    configured = os.environ.get("NEARX_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from pgserver.postgres_server import get_server

    # Not under pytest's basetemp: pytest resets that tree to mode 0700 at every session start
    # (each xdist worker's too), and pgserver runs PostgreSQL as a separate, unprivileged user
    # when started by root, which must be able to traverse to its data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="nearx-test-pg-")) / "pg"
    server = get_server(data_dir, cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")  # throwaway data: trade durability for speed
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated to the latest schema, copied by :func:`db_url` for each test."""
    name = f"nearx_tmpl_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name)
    migrate(with_database(pg_admin_url, name), MIGRATIONS)
    yield name
    drop_database(pg_admin_url, name)


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database of this test's own."""
    name = f"nearx_t_{uuid.uuid4().hex[:12]}"
    ensure_database(pg_admin_url, name, template=template_db)
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Sandbox settings whose local state lives in this test's temporary directory."""
    return load_settings(
        {
            "NEARX_HOME": str(tmp_path / "nearx"),
            "NEARX_DB_POOL_MAX_SIZE": "20",
            # what a test scores must not depend on this machine's speed; budget tests set their own
            "NEARX_SCORING_BUDGET_MS": "10000",
        }
    )


@pytest.fixture
def app(settings: Settings, db_url: str) -> Litestar:
    return create_app(settings, db_url=db_url)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
    """A direct connection to the test database, for arranging data and checking what was written."""
    from psycopg.rows import dict_row

    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection
