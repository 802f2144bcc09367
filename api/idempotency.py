"""Idempotent writes keyed by the client's ``Idempotency-Key`` header.

Inside the write's own transaction the key row is inserted first. A concurrent
retry blocks on that row's unique index until the first commits, then replays
the stored response, so the same key never does the work twice. The same key
with a different body is a 422.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from api.errors import InvalidInput
from nearx.db import Connection

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any


def request_fingerprint(body: Any) -> str:
    """A stable hash of the request body (keys sorted) to detect a key reused for another request."""
    canonical = msgspec.json.encode(msgspec.to_builtins(body), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def require_key(key: str | None) -> str:
    if not key or not 1 <= len(key) <= 255:
        raise InvalidInput(f"the {IDEMPOTENCY_HEADER} header is required (1 to 255 characters)")
    return key


async def claim(conn: Connection, *, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
    """Claim ``key`` in the current transaction, or return the response it already produced.

    Must run inside ``conn.transaction()``; the caller does its work and then
    :func:`remember` in the same transaction.
    """
    claimed = await (
        await conn.execute(
            """
            INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (%s, %s, %s)
            ON CONFLICT (scope, key) DO NOTHING
            RETURNING key
            """,
            (scope, key, fingerprint),
        )
    ).fetchone()
    if claimed:
        return None
    row = await (
        await conn.execute(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys "
            "WHERE scope = %s AND key = %s",
            (scope, key),
        )
    ).fetchone()
    assert row is not None  # the conflicting row is committed: we waited for it
    if row["request_hash"] != fingerprint:
        raise InvalidInput(f"this {IDEMPOTENCY_HEADER} was already used with a different request")
    return StoredResponse(row["response_status"], row["response_body"])


async def remember(conn: Connection, *, scope: str, key: str, status: int, body: Any) -> None:
    """Store the response of a claimed key, in the same transaction as the work."""
    await conn.execute(
        "UPDATE idempotency_keys SET response_status = %s, response_body = %s WHERE scope = %s AND key = %s",
        (status, Jsonb(msgspec.to_builtins(body)), scope, key),
    )
