"""Arrange users and their access tokens for API tests (shared with the permission matrix)."""

from __future__ import annotations

import uuid
from typing import Any

from api.security.principal import Principal, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings


async def insert_user(
    conn: Any,
    *roles: Role,
    phone: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
) -> uuid.UUID:
    """A user row with ``roles`` (customer when none are given)."""
    user_id = new_id()
    await conn.execute(
        "INSERT INTO users (id, phone, email, display_name) VALUES (%s, %s, %s, %s)",
        (user_id, phone, email, display_name),
    )
    for role in roles or (Role.CUSTOMER,):
        await conn.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, %s)", (user_id, role))
    return user_id


def auth(
    settings: Settings,
    user_id: uuid.UUID,
    *roles: Role,
    mfa: bool = False,
    session_id: uuid.UUID | None = None,
) -> dict[str, str]:
    """The ``Authorization`` header of a fresh access token for ``user_id`` (a new session by default)."""
    principal = Principal(
        user_id=user_id,
        roles=frozenset(roles or (Role.CUSTOMER,)),
        session_id=session_id or new_id(),
        mfa=mfa,
    )
    return {"Authorization": f"Bearer {TokenCodec(settings).issue(principal, now=utc_now())}"}
