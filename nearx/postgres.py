"""Where the database is: a configured server, or an embedded PostgreSQL started on demand.

``NEARX_DATABASE_URL`` points at any PostgreSQL. Unset, the platform runs a
private PostgreSQL from the ``pgserver`` package with its data under
``.nearx/pg``; it starts on first use and stops when the last process using it
exits, so a fresh machine needs no database server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

EMBEDDED_DATABASE = "nearx"


@contextmanager
def database_url(configured_url: str | None, embedded_dir: Path) -> Iterator[str]:
    """Yield a connection URL: the configured one, or the embedded server's while it runs."""
    if configured_url:
        yield configured_url
        return
    from pgserver.postgres_server import get_server

    embedded_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(embedded_dir, cleanup_mode="stop")
    try:
        admin_url = server.get_uri()
        ensure_database(admin_url, EMBEDDED_DATABASE)
        yield server.get_uri(EMBEDDED_DATABASE)
    finally:
        server.cleanup()


def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """Create database ``name`` on the server behind ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        conn.execute(statement)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting any session still attached (tests and resets)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (keeps host, socket and credentials)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return urlunsplit(parts._replace(path="/" + name))
