"""Uploads and downloads: validate, store the bytes, record who owns them.

The bytes are written before the metadata row commits; a crash between the two
leaves an orphan file (harmless, collectable by key listing), never a row
pointing at nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from api.errors import InvalidInput, NotFound
from api.security.principal import Principal, Role
from api.storage import repository as repo
from api.storage.schemas import StoredObject
from api.storage.store import ObjectStore, validate_key
from api.storage.validation import check
from nearx.db import Connection
from nearx.ids import new_id


async def upload(
    conn: Connection,
    store: ObjectStore,
    principal: Principal,
    purpose: str,
    data: bytes,
    declared: str | None,
) -> StoredObject:
    content_type, extension = check(purpose, data, declared)
    key = f"{purpose}-{new_id()}.{extension}"
    digest = hashlib.sha256(data).hexdigest()
    await asyncio.to_thread(store.put, key, data)  # stores block (disk, network): keep the loop free
    async with conn.transaction():
        await repo.insert(
            conn,
            {
                "key": key,
                "owner_id": principal.user_id,
                "purpose": purpose,
                "content_type": content_type,
                "size_bytes": len(data),
                "sha256": digest,
            },
        )
    return StoredObject(
        key=key, purpose=purpose, content_type=content_type, size_bytes=len(data), sha256=digest
    )


async def download(conn: Connection, store: ObjectStore, principal: Principal, key: str) -> tuple[bytes, str]:
    """The owner and support staff may read an object; others get a 404 (no existence leak)."""
    row = await repo.get(conn, validate_key(key))
    privileged = principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa
    if row is None or (row["owner_id"] != principal.user_id and not privileged):
        raise NotFound(f"object {key} was not found")
    return await asyncio.to_thread(store.get, key), row["content_type"]


async def require_owned(conn: Connection, owner_id: uuid.UUID, keys: Sequence[str], purpose: str) -> None:
    """Refuse references to objects the caller did not upload (or uploaded for another purpose)."""
    if not keys:
        return
    missing = sorted(set(keys) - await repo.owned(conn, owner_id, keys, purpose))
    if missing:
        raise InvalidInput(f"unknown {purpose} keys: {', '.join(missing)}")


async def uploads_of(conn: Connection, owner_id: uuid.UUID) -> list[dict[str, Any]]:
    """What the user uploaded (metadata, not the bytes), for a data export."""
    return await repo.owned_by(conn, owner_id)


async def forget_documents(conn: Connection, owner_id: uuid.UUID) -> list[str]:
    """Inside the account-erasure transaction: drop the metadata of the user's documents (identity
    and business papers); media (product pictures) stays. Returns the keys whose bytes to delete
    with :func:`delete_objects` once that transaction has committed."""
    return await repo.delete_owned(conn, owner_id, "document")


async def delete_objects(store: ObjectStore, keys: Sequence[str]) -> None:
    """Delete the bytes of ``keys`` (a missing object is already deleted)."""
    for key in keys:
        await asyncio.to_thread(store.delete, key)
