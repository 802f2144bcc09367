"""Identity rules other contexts may call, and role administration.

The profiles context uses :func:`export_identity` (data export) and
:func:`revoke_all_sessions` (account deletion, suspension); neither returns
or needs any secret.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.destinations import Channel, normalise
from api.domains.identity.limits import WINDOW
from api.domains.identity.signin import register_user
from api.errors import NotFound
from api.security.principal import PRIVILEGED_ROLES, Principal, Role
from api.security.revocations import RevocationList
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.outbox import append_event
from nearx.settings import Settings


async def export_identity(conn: Connection, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything identity holds about a user, for a data-rights export: no hashes, no secrets.

    Values are JSON-ready (ISO 8601 strings, str UUIDs).
    """
    roles = await repository.user_roles(conn, user_id)
    sessions = await repository.list_sessions(conn, user_id)
    events = await repository.list_security_events(conn, user_id)
    identities = await repository.list_oidc_identities(conn, user_id)
    factor = await repository.find_totp_factor(conn, user_id)
    return {
        "roles": [
            {
                "role": row["role"],
                "granted_at": _iso(row["granted_at"]),
                "granted_by": _str(row["granted_by"]),
            }
            for row in roles
        ],
        "sessions": [
            {
                "id": str(row["id"]),
                "method": row["method"],
                "mfa": row["mfa"],
                "ip": row["ip"],
                "user_agent": row["user_agent"],
                "created_at": _iso(row["created_at"]),
                "last_used_at": _iso(row["last_used_at"]),
                "expires_at": _iso(row["expires_at"]),
                "revoked_at": _iso(row["revoked_at"]),
                "revoke_reason": row["revoke_reason"],
            }
            for row in sessions
        ],
        "linked_identities": [
            {
                "provider": row["provider"],
                "subject": row["subject"],
                "email": row["email"],
                "created_at": _iso(row["created_at"]),
                "last_login": _iso(row["last_login"]),
            }
            for row in identities
        ],
        "second_factor": {
            "totp_enrolled": factor is not None and factor["confirmed_at"] is not None,
            "totp_confirmed_at": _iso(factor["confirmed_at"]) if factor else None,
            "unused_recovery_codes": await repository.unused_recovery_codes(conn, user_id),
        },
        "security_events": [
            {
                "id": str(row["id"]),
                "event": row["event"],
                "actor_id": _str(row["actor_id"]),
                "ip": row["ip"],
                "user_agent": row["user_agent"],
                "detail": row["detail"],
                "occurred_at": _iso(row["occurred_at"]),
            }
            for row in events
        ],
    }


async def revoke_all_sessions(conn: Connection, user_id: uuid.UUID, *, reason: str) -> list[uuid.UUID]:
    """Revoke every live session of a user: refresh tokens and access tokens stop working.

    Joins the caller's transaction when there is one (account deletion), else
    runs in its own. Returns the sessions revoked: whoever owns the commit may add
    them to the worker's ``RevocationList`` after it (``note``), so this worker
    refuses their access tokens at once; otherwise every worker does within the
    revocation poll interval.
    """
    async with conn.transaction():
        revoked = await repository.revoke_user_sessions(conn, user_id, reason=reason, now=utc_now())
        if revoked:
            await record(
                conn,
                SecurityEvent.SESSION_REVOKED,
                context=RequestContext(),
                user_id=user_id,
                reason=reason,
                sessions=[str(session_id) for session_id in revoked],
            )
    return revoked


async def erase_identity(conn: Connection, user_id: uuid.UUID) -> None:
    """Erase the personal data identity holds for a deleted account (GDPR Art. 17).

    Must run before the users row loses its phone and email, which locate the
    account's one-time codes. Second factors go too: the account can no longer sign in.
    """
    async with conn.transaction():
        await repository.erase_identity_pii(conn, user_id)


async def find_or_register(
    conn: Connection, *, phone: str | None = None, email: str | None = None, context: RequestContext
) -> uuid.UUID:
    """The user signed in by ``phone`` (else ``email``), registered as a customer if there is none,
    exactly as a first sign-in would: for callers that provision accounts (the demo seeder)."""
    channel: Channel = "sms" if phone else "email"
    destination = normalise(channel, phone or email or "")
    async with conn.transaction():
        existing = await repository.find_user_by_destination(conn, channel, destination)
        if existing is not None:
            return uuid.UUID(str(existing["id"]))
        return await register_user(
            conn,
            phone=destination if channel == "sms" else None,
            email=destination if channel == "email" else None,
            context=context,
        )


async def list_roles(conn: Connection, user_id: uuid.UUID) -> list[Role]:
    if await repository.find_user(conn, user_id) is None:
        raise NotFound("no such user")
    return [Role(row["role"]) for row in await repository.user_roles(conn, user_id)]


async def grant_role(
    conn: Connection, admin: Principal, user_id: uuid.UUID, role: Role, *, context: RequestContext
) -> list[Role]:
    """Grant a platform role (idempotent); recorded in the audit trail and the outbox."""
    async with conn.transaction():
        if await repository.find_user(conn, user_id) is None:
            raise NotFound("no such user")
        if await repository.insert_role(conn, user_id, role.value, granted_by=admin.user_id, now=utc_now()):
            await record(
                conn,
                SecurityEvent.ROLE_GRANTED,
                context=context,
                user_id=user_id,
                actor_id=admin.user_id,
                role=role.value,
            )
            await append_event(
                conn,
                event_type="user.role_granted",
                aggregate_type="user",
                aggregate_id=user_id,
                payload={"user_id": str(user_id), "role": role.value, "by": str(admin.user_id)},
            )
    return await list_roles(conn, user_id)


async def revoke_role(
    conn: Connection,
    admin: Principal,
    user_id: uuid.UUID,
    role: Role,
    revocations: RevocationList | None,
    *,
    context: RequestContext,
) -> list[Role]:
    """Revoke a platform role (idempotent). Losing a privileged role also ends the user's
    sessions, so no still-valid access token keeps admin or support powers (in this worker
    from the commit on: the sessions join ``revocations``)."""
    ended: list[uuid.UUID] = []
    async with conn.transaction():
        if await repository.find_user(conn, user_id) is None:
            raise NotFound("no such user")
        if await repository.delete_role(conn, user_id, role.value):
            await record(
                conn,
                SecurityEvent.ROLE_REVOKED,
                context=context,
                user_id=user_id,
                actor_id=admin.user_id,
                role=role.value,
            )
            await append_event(
                conn,
                event_type="user.role_revoked",
                aggregate_type="user",
                aggregate_id=user_id,
                payload={"user_id": str(user_id), "role": role.value, "by": str(admin.user_id)},
            )
            if role in PRIVILEGED_ROLES:
                ended = await revoke_all_sessions(conn, user_id, reason=f"role {role.value} revoked")
    if revocations is not None:
        # stamped after the commit, so no earlier than revoked_at: the entry outlives their tokens
        revocations.note(ended, utc_now())
    return await list_roles(conn, user_id)


async def purge_expired(conn: Connection, settings: Settings) -> dict[str, int]:
    """Delete sign-in state that can never be used again; returns rows deleted per table.

    One-time codes and OIDC flows are kept for the longer of their lifetime and
    the rate-limit window, because the limits count them. Sessions and the audit trail are kept.
    """
    now = utc_now()
    async with conn.transaction():
        return {
            "otp_challenges": await repository.delete_otp_challenges_before(
                conn, now - max(WINDOW, timedelta(seconds=settings.otp_ttl_s))
            ),
            "mfa_challenges": await repository.delete_expired_mfa_challenges(conn, now),
            "oidc_flows": await repository.delete_expired_oidc_flows(conn, now, counted_since=now - WINDOW),
            "refresh_tokens": await repository.delete_refresh_tokens_of_dead_sessions(conn, now),
        }


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
