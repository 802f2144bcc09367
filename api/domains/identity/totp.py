"""TOTP second factor (RFC 6238 via ``pyotp``) and single-use recovery codes.

Enrolment stores an encrypted secret that only counts once confirmed with a
valid code. Each 30-second step can be used once per user (replay refused).
Confirming returns 10 recovery codes, shown once and stored keyed-hashed.
Confirming also upgrades the caller's session to ``mfa``, which is how a
privileged user who signed in without TOTP gets their privileged roles.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.digests import keyed_digest, secret_box, token_digest
from api.domains.identity.sessions import TokenPair, issue_access_token, start_session
from api.errors import Conflict, InvalidInput, Unauthenticated
from api.security.principal import Principal
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.settings import Settings

ISSUER = "NEARX"
RECOVERY_CODES = 10
VALID_WINDOW = 1
"""Steps accepted either side of now: tolerates 30 s of clock drift on the phone."""
INVALID_SECOND_FACTOR = "the second-factor code is not valid"


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    provisioning_uri: str


@dataclass(frozen=True, slots=True)
class Confirmation:
    recovery_codes: list[str]
    access_token: str
    expires_in: int


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals ``code`` within the drift window, else None."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _recovery_digest(settings: Settings, user_id: uuid.UUID, code: str) -> str:
    normalised = code.replace("-", "").replace(" ", "").lower()
    return keyed_digest(settings.pepper, "recovery", str(user_id), normalised)


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)  # 40 bits, keyed-hashed and single-use
    return f"{raw[:5]}-{raw[5:]}"


async def enrol(
    conn: Connection, settings: Settings, principal: Principal, *, context: RequestContext
) -> Enrolment:
    """Start (or restart) enrolment; refused once a factor is confirmed."""
    secret = pyotp.random_base32()
    encrypted = secret_box(settings.pepper).encrypt(secret.encode()).decode()
    async with conn.transaction():
        user = await repository.find_user(conn, principal.user_id)
        if user is None:
            raise Unauthenticated("unknown user")
        if not await repository.put_pending_totp_factor(conn, principal.user_id, encrypted, utc_now()):
            raise Conflict("a second factor is already enrolled")
        await record(conn, SecurityEvent.TOTP_ENROLLED, context=context, user_id=principal.user_id)
    label = user["email"] or user["phone"] or str(principal.user_id)
    return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=ISSUER))


async def confirm(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    principal: Principal,
    *,
    code: str,
    context: RequestContext,
) -> Confirmation:
    now = utc_now()
    async with conn.transaction():
        factor = await repository.find_totp_factor(conn, principal.user_id)
        if factor is None:
            raise Conflict("start enrolment first")
        if factor["confirmed_at"] is not None:
            raise Conflict("the second factor is already confirmed")
        secret = secret_box(settings.pepper).decrypt(factor["secret_encrypted"].encode()).decode()
        step = matching_step(secret, code, now)
        if step is None or not await repository.use_totp_step(conn, principal.user_id, step):
            raise InvalidInput(INVALID_SECOND_FACTOR)
        await repository.confirm_totp_factor(conn, principal.user_id, now)
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
        await repository.replace_recovery_codes(
            conn, principal.user_id, [_recovery_digest(settings, principal.user_id, c) for c in codes], now
        )
        await repository.mark_session_mfa(conn, principal.session_id)
        await record(conn, SecurityEvent.TOTP_CONFIRMED, context=context, user_id=principal.user_id)
        access = await issue_access_token(
            conn, codec, user_id=principal.user_id, session_id=principal.session_id, mfa=True, now=now
        )
    return Confirmation(codes, access, int(codec.ttl.total_seconds()))


async def verify_second_factor(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    *,
    mfa_token: str,
    code: str | None,
    recovery_code: str | None,
    context: RequestContext,
) -> TokenPair:
    """Redeem an ``mfa_required`` ticket with a TOTP code or a recovery code: an ``mfa`` session."""
    if (code is None) == (recovery_code is None):
        raise InvalidInput("give exactly one of code and recovery_code")
    now = utc_now()
    attempt = await repository.reserve_mfa_attempt(conn, token_digest(mfa_token), now)  # spent at once
    if attempt is None:
        raise Unauthenticated("the sign-in ticket is not valid, was used, or has expired; sign in again")
    user_id = attempt["user_id"]
    async with conn.transaction():
        accepted = await _check_factor(conn, settings, user_id, code, recovery_code, now)
        if accepted:
            if not await repository.consume_mfa_challenge(conn, attempt["id"], now):
                raise Unauthenticated(INVALID_SECOND_FACTOR)  # a concurrent request redeemed it
            if recovery_code is not None:
                await record(conn, SecurityEvent.RECOVERY_CODE_USED, context=context, user_id=user_id)
            return await start_session(
                conn, settings, codec, user_id=user_id, method=attempt["method"], mfa=True, context=context
            )
    async with conn.transaction():
        await record(
            conn,
            SecurityEvent.MFA_FAILED,
            context=context,
            user_id=user_id,
            attempts=attempt["attempts"],
            kind="recovery_code" if recovery_code is not None else "totp",
        )
        if attempt["attempts"] >= attempt["max_attempts"]:
            await record(conn, SecurityEvent.MFA_LOCKED, context=context, user_id=user_id)
    raise Unauthenticated(INVALID_SECOND_FACTOR)


async def _check_factor(
    conn: Connection,
    settings: Settings,
    user_id: uuid.UUID,
    code: str | None,
    recovery_code: str | None,
    now: datetime,
) -> bool:
    if recovery_code is not None:
        digest = _recovery_digest(settings, user_id, recovery_code)
        return await repository.use_recovery_code(conn, user_id, digest, now)
    factor = await repository.find_totp_factor(conn, user_id)
    if factor is None or factor["confirmed_at"] is None or code is None:
        return False
    secret = secret_box(settings.pepper).decrypt(factor["secret_encrypted"].encode()).decode()
    step = matching_step(secret, code, now)
    return step is not None and await repository.use_totp_step(conn, user_id, step)
