"""What happens once a first factor (one-time code or OIDC) has been proven.

* TOTP enrolled: no tokens yet; a short-lived, attempt-limited ``mfa_token``
  that only ``POST /v1/auth/totp/verify`` can redeem.
* No TOTP but a privileged role (admin, support): a session WITHOUT the
  privileged roles and the status ``mfa_enrolment_required``; the token can
  enrol and confirm TOTP, which upgrades the session. A privileged mfa-less
  token is never issued.
* Otherwise: a session and its tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.digests import new_token, token_digest
from api.domains.identity.sessions import TokenPair, held_roles, start_session
from api.errors import Forbidden
from api.security.principal import PRIVILEGED_ROLES, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.settings import Settings

SignInStatus = Literal["signed_in", "mfa_required", "mfa_enrolment_required"]
MFA_CHALLENGE_TTL_S = 300


@dataclass(frozen=True, slots=True)
class SignInResult:
    status: SignInStatus
    tokens: TokenPair | None = None
    mfa_token: str | None = None
    mfa_expires_in: int | None = None


async def register_user(
    conn: Connection, *, phone: str | None, email: str | None, context: RequestContext
) -> uuid.UUID:
    """Create a user on first sign-in, with the customer role; inside the sign-in transaction."""
    now = utc_now()
    user_id = new_id()
    await repository.insert_user(conn, user_id, phone=phone, email=email, now=now)
    await repository.insert_role(conn, user_id, Role.CUSTOMER.value, granted_by=None, now=now)
    await record(conn, SecurityEvent.USER_REGISTERED, context=context, user_id=user_id)
    await append_event(
        conn,
        event_type="user.registered",
        aggregate_type="user",
        aggregate_id=user_id,
        payload={"user_id": str(user_id)},
    )
    return user_id


async def complete_first_factor(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    *,
    user_id: uuid.UUID,
    method: str,
    context: RequestContext,
) -> SignInResult:
    """Decide the next step after a first factor; call inside the sign-in transaction."""
    user = await repository.find_user(conn, user_id)
    if user is None or user["status"] != "active":
        raise Forbidden("this account is not active")
    factor = await repository.find_totp_factor(conn, user_id)
    if factor is not None and factor["confirmed_at"] is not None:
        ticket = new_token()
        now = utc_now()
        await repository.insert_mfa_challenge(
            conn,
            new_id(),
            user_id=user_id,
            token_hash=token_digest(ticket),
            method=method,
            ip=context.ip,
            user_agent=context.user_agent,
            now=now,
            expires_at=now + timedelta(seconds=MFA_CHALLENGE_TTL_S),
            max_attempts=settings.otp_max_attempts,
        )
        await record(conn, SecurityEvent.MFA_REQUIRED, context=context, user_id=user_id, method=method)
        return SignInResult("mfa_required", mfa_token=ticket, mfa_expires_in=MFA_CHALLENGE_TTL_S)
    tokens = await start_session(
        conn, settings, codec, user_id=user_id, method=method, mfa=False, context=context
    )
    privileged = not (await held_roles(conn, user_id)).isdisjoint(PRIVILEGED_ROLES)
    return SignInResult("mfa_enrolment_required" if privileged else "signed_in", tokens=tokens)
