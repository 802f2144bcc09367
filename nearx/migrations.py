"""Forward-only SQL migrations, tracked and locked by yoyo-migrations.

Each numbered ``.sql`` file runs in its own transaction; yoyo records what ran,
so migrating twice is a no-op, and a database lock keeps concurrent migrators
from racing. There are no rollback scripts: a fix is a new migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from yoyo import get_backend, read_migrations


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One migration and when it was applied (``None`` while pending)."""

    migration_id: str
    applied_at: datetime | None


def _yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme; ours is psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if "://" not in url:
        raise ValueError("migrations need a postgresql:// URL")
    return url


def migrate(url: str, directory: Path) -> list[str]:
    """Apply every pending migration in ``directory``; return the ids applied, in order."""
    backend = get_backend(_yoyo_url(url))
    try:
        migrations = read_migrations(str(directory))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [migration.id for migration in pending]
    finally:
        backend.connection.close()


def status(url: str, directory: Path) -> list[MigrationState]:
    """Every migration in ``directory`` with its applied time, oldest first."""
    backend = get_backend(_yoyo_url(url))
    try:
        migrations = read_migrations(str(directory))
        with backend.lock():
            backend.ensure_internal_schema_updated()
        rows = backend.execute(
            f"SELECT migration_id, applied_at_utc FROM {backend.migration_table_quoted}"
        ).fetchall()
    finally:
        backend.connection.close()
    applied = {migration_id: when.replace(tzinfo=UTC) for migration_id, when in rows}
    return [MigrationState(m.id, applied.get(m.id)) for m in migrations]
