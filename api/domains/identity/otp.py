"""Sign-in by one-time code over SMS or email.

Codes are 6 random digits, stored as HMAC-SHA256 under the server pepper and
bound to the destination, valid for ``otp_ttl_s``, usable once, and only the
destination's latest code counts. Verification first SPENDS an attempt
(committed on its own), then compares, so ``otp_max_attempts`` holds even for
concurrent guesses; a locked code stays locked, even for the right digits.

Requests are rate-limited per destination and per client IP over a sliding
hour, counted in PostgreSQL under advisory locks so the limits hold across
API workers. Responses never reveal whether an account exists.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.destinations import Channel, infer_channel, normalise
from api.domains.identity.digests import digests_match, keyed_digest
from api.domains.identity.limits import WINDOW, enforce
from api.domains.identity.signin import SignInResult, complete_first_factor, register_user
from api.domains.notifications.sender import MessageSender
from api.errors import Unauthenticated
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.settings import Settings

INVALID_CODE = "the code is not valid or has expired; check it or request a new one"
LOCKED_CODE = "too many wrong codes; request a new code"


def _code_digest(settings: Settings, destination: str, code: str) -> str:
    return keyed_digest(settings.pepper, "otp", destination, code)


def _mask(destination: str) -> str:
    """Enough of a destination for an audit reader to recognise it, not to contact it."""
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{destination[:4]}***{destination[-2:]}"


async def request_code(
    conn: Connection,
    settings: Settings,
    sender: MessageSender,
    *,
    channel: Channel,
    destination: str,
    context: RequestContext,
) -> int:
    """Create and send a code; returns its lifetime in seconds. The same answer for every destination."""
    target = normalise(channel, destination)
    now = utc_now()
    code = f"{secrets.randbelow(1_000_000):06d}"
    async with conn.transaction():
        keys = [f"otp:destination:{target}"] + ([f"otp:ip:{context.ip}"] if context.ip else [])
        await repository.lock_keys(conn, keys)
        since = now - WINDOW
        enforce(
            await repository.otp_requests_by_destination(conn, target, since),
            settings.otp_requests_per_destination_per_hour,
            now,
            "this destination",
        )
        if context.ip:
            enforce(
                await repository.otp_requests_by_ip(conn, context.ip, since),
                settings.otp_requests_per_ip_per_hour,
                now,
                "this network address",
            )
        await repository.insert_otp_challenge(
            conn,
            new_id(),
            channel=channel,
            destination=target,
            code_hash=_code_digest(settings, target, code),
            ip=context.ip,
            now=now,
            expires_at=now + timedelta(seconds=settings.otp_ttl_s),
            max_attempts=settings.otp_max_attempts,
        )
        user = await repository.find_user_by_destination(conn, channel, target)
        await record(
            conn,
            SecurityEvent.OTP_REQUESTED,
            context=context,
            user_id=user["id"] if user else None,
            channel=channel,
            destination=_mask(target),
        )
    await sender.send(
        channel=channel,
        destination=target,
        template="otp",
        params={"code": code, "minutes": str(math.ceil(settings.otp_ttl_s / 60))},
    )
    return settings.otp_ttl_s


async def verify_code(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    *,
    destination: str,
    code: str,
    context: RequestContext,
) -> SignInResult:
    """Redeem a code: first sign-in registers the user (role customer)."""
    channel = infer_channel(destination)
    target = normalise(channel, destination)
    now = utc_now()
    attempt = await repository.reserve_otp_attempt(conn, target, now)  # autocommit: spent at once
    if attempt is None:
        # No attempt could be spent, so nothing was at stake: refuse without writing, or
        # anonymous callers could flood the audit trail.
        raise Unauthenticated(LOCKED_CODE if await _locked(conn, target, now) else INVALID_CODE)
    if not digests_match(_code_digest(settings, target, code), attempt["code_hash"]):
        await _record_failure(conn, channel, target, attempt, context)
        locked = attempt["attempts"] >= attempt["max_attempts"]
        raise Unauthenticated(LOCKED_CODE if locked else INVALID_CODE)
    async with conn.transaction():
        if not await repository.consume_otp_challenge(conn, attempt["id"], now):
            raise Unauthenticated(INVALID_CODE)
        user = await repository.find_user_by_destination(conn, channel, target)
        if user is None:
            user_id = await register_user(
                conn,
                phone=target if channel == "sms" else None,
                email=target if channel == "email" else None,
                context=context,
            )
        else:
            user_id = user["id"]
        return await complete_first_factor(
            conn, settings, codec, user_id=user_id, method="otp", context=context
        )


async def _locked(conn: Connection, target: str, now: datetime) -> bool:
    latest = await repository.latest_otp_challenge(conn, target)
    return (
        latest is not None
        and latest["consumed_at"] is None
        and latest["expires_at"] > now
        and latest["attempts"] >= latest["max_attempts"]
    )


async def _record_failure(
    conn: Connection, channel: Channel, target: str, attempt: repository.Row, context: RequestContext
) -> None:
    """Audit a wrong code (and the lockout it may cause) in its own committed transaction."""
    async with conn.transaction():
        user = await repository.find_user_by_destination(conn, channel, target)
        user_id = user["id"] if user else None
        await record(
            conn,
            SecurityEvent.OTP_FAILED,
            context=context,
            user_id=user_id,
            destination=_mask(target),
            attempts=attempt["attempts"],
        )
        if attempt["attempts"] >= attempt["max_attempts"]:
            await record(
                conn, SecurityEvent.OTP_LOCKED, context=context, user_id=user_id, destination=_mask(target)
            )
