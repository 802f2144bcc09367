"""Application-generated identifiers: time-ordered UUIDv7, so inserts stay index-friendly."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    """A new UUIDv7 as a standard-library ``uuid.UUID`` (what psycopg and msgspec expect)."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
