"""The security audit trail: who did what to which account, from where, and when.

Events are written in the same transaction as the change they describe, except
failures (a wrong code, a reused token), which the service commits on their own
before it refuses the request, so a rolled-back request still leaves its trace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.domains.identity import repository
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id


class SecurityEvent(StrEnum):
    OTP_REQUESTED = "otp.requested"
    OTP_FAILED = "otp.failed"
    OTP_LOCKED = "otp.locked"
    SIGNED_IN = "session.signed_in"
    SIGNED_OUT = "session.signed_out"
    SESSION_REVOKED = "session.revoked"
    TOKEN_REUSE = "refresh.reused"
    MFA_REQUIRED = "mfa.required"
    MFA_FAILED = "mfa.failed"
    MFA_LOCKED = "mfa.locked"
    RECOVERY_CODE_USED = "mfa.recovery_used"
    TOTP_ENROLLED = "totp.enrolled"
    TOTP_CONFIRMED = "totp.confirmed"
    OIDC_FAILED = "oidc.failed"
    OIDC_LINKED = "oidc.linked"
    ROLE_GRANTED = "role.granted"
    ROLE_REVOKED = "role.revoked"
    MERCHANT_ROLE_GRANTED = "merchant_role.granted"
    MERCHANT_ROLE_REVOKED = "merchant_role.revoked"
    USER_REGISTERED = "user.registered"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where a security-relevant request came from (the client address as the server saw it)."""

    ip: str | None = None
    user_agent: str | None = None


async def record(
    conn: Connection,
    event: SecurityEvent,
    *,
    context: RequestContext,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    **detail: Any,
) -> None:
    """Append one event; never pass secrets (codes, tokens) in ``detail``."""
    await repository.insert_security_event(
        conn,
        new_id(),
        event=event.value,
        user_id=user_id,
        actor_id=actor_id,
        ip=context.ip,
        user_agent=context.user_agent,
        detail=detail,
        now=utc_now(),
    )
