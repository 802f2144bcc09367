"""Sessions, short-lived access tokens and rotating refresh tokens.

A session is one sign-in; its refresh tokens form one family. Each refresh
exchanges the presented token for a new one. Presenting a token that was
already exchanged means it was copied: the whole family (the session) is
revoked, so the thief's and the owner's newest tokens both stop working and
the owner signs in again.

Access tokens carry the roles read from the database when they are issued. A
session without a verified second factor never carries a privileged role
(admin, support): the user must enrol or verify TOTP to get one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.digests import new_token, token_digest
from api.errors import Unauthenticated
from api.security.principal import PRIVILEGED_ROLES, Principal, Role
from api.security.revocations import RevocationList
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.settings import Settings

INVALID_REFRESH = "the refresh token is not valid; sign in again"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


def session_roles(held: frozenset[Role], *, mfa: bool) -> frozenset[Role]:
    """The roles a token may carry: privileged ones only with a second factor."""
    return held if mfa else held - PRIVILEGED_ROLES


async def held_roles(conn: Connection, user_id: uuid.UUID) -> frozenset[Role]:
    return frozenset(Role(row["role"]) for row in await repository.user_roles(conn, user_id))


async def issue_access_token(
    conn: Connection,
    codec: TokenCodec,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    mfa: bool,
    now: datetime,
) -> str:
    roles = session_roles(await held_roles(conn, user_id), mfa=mfa)
    return codec.issue(Principal(user_id=user_id, roles=roles, session_id=session_id, mfa=mfa), now=now)


async def _new_refresh_token(
    conn: Connection, settings: Settings, session_id: uuid.UUID, now: datetime
) -> tuple[uuid.UUID, str]:
    token, token_id = new_token(), new_id()
    await repository.insert_refresh_token(
        conn,
        token_id,
        session_id=session_id,
        token_hash=token_digest(token),
        now=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    return token_id, token


async def start_session(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    *,
    user_id: uuid.UUID,
    method: str,
    mfa: bool,
    context: RequestContext,
) -> TokenPair:
    """Open a session with its first refresh token; call inside the sign-in transaction."""
    now = utc_now()
    session_id = new_id()
    await repository.insert_session(
        conn,
        session_id,
        user_id=user_id,
        method=method,
        mfa=mfa,
        ip=context.ip,
        user_agent=context.user_agent,
        now=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    _, refresh = await _new_refresh_token(conn, settings, session_id, now)
    access = await issue_access_token(conn, codec, user_id=user_id, session_id=session_id, mfa=mfa, now=now)
    await record(
        conn,
        SecurityEvent.SIGNED_IN,
        context=context,
        user_id=user_id,
        session_id=str(session_id),
        method=method,
        mfa=mfa,
    )
    return TokenPair(access, refresh, int(codec.ttl.total_seconds()), session_id)


async def rotate(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    revocations: RevocationList | None,
    *,
    refresh_token: str,
    context: RequestContext,
) -> TokenPair:
    """Exchange a refresh token for a new pair; a replayed token revokes its whole family
    (in ``revocations`` too, once committed, so its access tokens stop here at once)."""
    now = utc_now()
    digest = token_digest(refresh_token)
    async with conn.transaction():
        claimed = await repository.claim_refresh_token(conn, digest, now)
        if claimed is not None:
            session = await repository.find_session(conn, claimed["session_id"])
            assert session is not None  # refresh_tokens.session_id is a foreign key
            user = await repository.find_user(conn, session["user_id"])
            live = (
                session["revoked_at"] is None
                and session["expires_at"] > now
                and claimed["expires_at"] > now
                and user is not None
                and user["status"] == "active"
            )
            if live:
                successor_id, successor = await _new_refresh_token(conn, settings, session["id"], now)
                await repository.link_refresh_successor(conn, claimed["id"], successor_id)
                await repository.touch_session(conn, session["id"], now)
                access = await issue_access_token(
                    conn,
                    codec,
                    user_id=session["user_id"],
                    session_id=session["id"],
                    mfa=session["mfa"],
                    now=now,
                )
                return TokenPair(access, successor, int(codec.ttl.total_seconds()), session["id"])
    # Not live: a rotated token, an unknown one, or one of a dead session. Reuse of a
    # rotated token revokes the family, committed before we refuse.
    if claimed is None:
        revoked: list[uuid.UUID] = []
        async with conn.transaction():
            known = await repository.find_refresh_token(conn, digest)
            if known is not None and known["rotated_at"] is not None:
                session = await repository.find_session(conn, known["session_id"])
                assert session is not None
                if await repository.revoke_session(
                    conn, session["id"], reason="refresh token reuse", now=now
                ):
                    revoked.append(session["id"])
                await record(
                    conn,
                    SecurityEvent.TOKEN_REUSE,
                    context=context,
                    user_id=session["user_id"],
                    session_id=str(session["id"]),
                )
        if revocations is not None:
            revocations.note(revoked, now)
    raise Unauthenticated(INVALID_REFRESH)


async def end_session(
    conn: Connection, principal: Principal, revocations: RevocationList | None, *, context: RequestContext
) -> None:
    """Sign out: the session's refresh tokens and its access tokens stop working (in this
    worker at once: the session joins ``revocations`` after the commit)."""
    now = utc_now()
    async with conn.transaction():
        revoked = await repository.revoke_session(conn, principal.session_id, reason="logout", now=now)
        if revoked:
            await record(
                conn,
                SecurityEvent.SIGNED_OUT,
                context=context,
                user_id=principal.user_id,
                session_id=str(principal.session_id),
            )
    if revoked and revocations is not None:
        revocations.note([principal.session_id], now)
