"""All SQL of the identity context: users and roles, sessions, refresh tokens,
one-time codes, TOTP factors, OIDC links and the security audit trail.

Functions take the caller's connection and never open transactions: the
service decides what is atomic (a failed attempt must commit on its own).
Secrets arrive here already hashed or encrypted.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from nearx.db import Connection
from nearx.ids import new_id

Row = dict[str, Any]
Channel = Literal["sms", "email"]


# --- users and roles ---------------------------------------------------------------------------


async def find_user_by_destination(conn: Connection, channel: Channel, destination: str) -> Row | None:
    query = (
        "SELECT id, status FROM users WHERE phone = %s"
        if channel == "sms"
        else "SELECT id, status FROM users WHERE email = %s"
    )
    return await (await conn.execute(query, (destination,))).fetchone()


async def find_user(conn: Connection, user_id: uuid.UUID) -> Row | None:
    return await (
        await conn.execute("SELECT id, status, email, phone FROM users WHERE id = %s", (user_id,))
    ).fetchone()


async def insert_user(
    conn: Connection, user_id: uuid.UUID, *, phone: str | None, email: str | None, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO users (id, phone, email, created_at, updated_at) VALUES (%s, %s, %s, %s, %s)",
        (user_id, phone, email, now, now),
    )


async def email_in_use(conn: Connection, email: str) -> bool:
    row = await (await conn.execute("SELECT 1 AS hit FROM users WHERE email = %s", (email,))).fetchone()
    return row is not None


async def user_roles(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    cursor = await conn.execute(
        "SELECT role, granted_at, granted_by FROM user_roles WHERE user_id = %s ORDER BY role", (user_id,)
    )
    return await cursor.fetchall()


async def insert_role(
    conn: Connection, user_id: uuid.UUID, role: str, *, granted_by: uuid.UUID | None, now: datetime
) -> bool:
    """Grant ``role``; False when the user already held it."""
    cursor = await conn.execute(
        """
        INSERT INTO user_roles (user_id, role, granted_at, granted_by) VALUES (%s, %s, %s, %s)
        ON CONFLICT (user_id, role) DO NOTHING
        RETURNING role
        """,
        (user_id, role, now, granted_by),
    )
    return await cursor.fetchone() is not None


async def delete_role(conn: Connection, user_id: uuid.UUID, role: str) -> bool:
    cursor = await conn.execute(
        "DELETE FROM user_roles WHERE user_id = %s AND role = %s RETURNING role", (user_id, role)
    )
    return await cursor.fetchone() is not None


# --- sessions and refresh tokens ---------------------------------------------------------------


async def insert_session(
    conn: Connection,
    session_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    method: str,
    mfa: bool,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO auth_sessions (id, user_id, method, mfa, ip, user_agent, created_at, last_used_at,
                                   expires_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (session_id, user_id, method, mfa, ip, user_agent, now, now, expires_at),
    )


async def find_session(conn: Connection, session_id: uuid.UUID) -> Row | None:
    return await (
        await conn.execute(
            "SELECT id, user_id, mfa, expires_at, revoked_at FROM auth_sessions WHERE id = %s", (session_id,)
        )
    ).fetchone()


async def session_is_revoked(conn: Connection, session_id: uuid.UUID) -> bool:
    """True only for a known session that was revoked (tokens of unknown sessions stay valid)."""
    cursor = await conn.execute(
        "SELECT 1 AS hit FROM auth_sessions WHERE id = %s AND revoked_at IS NOT NULL", (session_id,)
    )
    return await cursor.fetchone() is not None


async def revocations_since(conn: Connection, since: datetime) -> list[Row]:
    """``id`` and ``revoked_at`` of the sessions revoked after ``since``: the revocation list's
    poll, a range scan of the partial index ``auth_sessions_revoked``."""
    cursor = await conn.execute("SELECT id, revoked_at FROM auth_sessions WHERE revoked_at > %s", (since,))
    return await cursor.fetchall()


async def mark_session_mfa(conn: Connection, session_id: uuid.UUID) -> None:
    await conn.execute("UPDATE auth_sessions SET mfa = true WHERE id = %s", (session_id,))


async def touch_session(conn: Connection, session_id: uuid.UUID, now: datetime) -> None:
    await conn.execute("UPDATE auth_sessions SET last_used_at = %s WHERE id = %s", (now, session_id))


async def revoke_session(conn: Connection, session_id: uuid.UUID, *, reason: str, now: datetime) -> bool:
    """Revoke one session; False when it was already revoked or does not exist."""
    cursor = await conn.execute(
        """
        UPDATE auth_sessions SET revoked_at = %s, revoke_reason = %s
        WHERE id = %s AND revoked_at IS NULL
        RETURNING id
        """,
        (now, reason, session_id),
    )
    return await cursor.fetchone() is not None


async def revoke_user_sessions(
    conn: Connection, user_id: uuid.UUID, *, reason: str, now: datetime
) -> list[uuid.UUID]:
    cursor = await conn.execute(
        """
        UPDATE auth_sessions SET revoked_at = %s, revoke_reason = %s
        WHERE user_id = %s AND revoked_at IS NULL
        RETURNING id
        """,
        (now, reason, user_id),
    )
    return [row["id"] for row in await cursor.fetchall()]


_ERASE_IDENTITY_PII = (
    # One-time codes are keyed by destination, not user: match the account's phone and email.
    "DELETE FROM otp_challenges WHERE destination IN "
    "(SELECT phone FROM users WHERE id = %(user)s UNION SELECT email FROM users WHERE id = %(user)s)",
    "DELETE FROM totp_factors WHERE user_id = %(user)s",
    "DELETE FROM recovery_codes WHERE user_id = %(user)s",
    "UPDATE auth_sessions SET ip = NULL, user_agent = NULL WHERE user_id = %(user)s",
    "UPDATE mfa_challenges SET ip = NULL, user_agent = NULL WHERE user_id = %(user)s",
    "UPDATE security_events SET ip = NULL, user_agent = NULL WHERE user_id = %(user)s",
    "UPDATE oidc_identities SET email = NULL WHERE user_id = %(user)s",
)


async def erase_identity_pii(conn: Connection, user_id: uuid.UUID) -> None:
    """Drop or null the personal data identity keeps; the audit trail keeps events, not people."""
    for statement in _ERASE_IDENTITY_PII:
        await conn.execute(statement, {"user": user_id})


async def list_sessions(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    cursor = await conn.execute(
        """
        SELECT id, method, mfa, ip, user_agent, created_at, last_used_at, expires_at, revoked_at,
               revoke_reason
        FROM auth_sessions WHERE user_id = %s ORDER BY created_at DESC
        """,
        (user_id,),
    )
    return await cursor.fetchall()


async def insert_refresh_token(
    conn: Connection,
    token_id: uuid.UUID,
    *,
    session_id: uuid.UUID,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
        VALUES (%s, %s, %s, %s, %s)
        """,
        (token_id, session_id, token_hash, now, expires_at),
    )


async def claim_refresh_token(conn: Connection, token_hash: str, now: datetime) -> Row | None:
    """Mark a not-yet-rotated token as rotated, atomically; None when it was not claimable."""
    cursor = await conn.execute(
        """
        UPDATE refresh_tokens SET rotated_at = %s
        WHERE token_hash = %s AND rotated_at IS NULL
        RETURNING id, session_id, expires_at
        """,
        (now, token_hash),
    )
    return await cursor.fetchone()


async def find_refresh_token(conn: Connection, token_hash: str) -> Row | None:
    cursor = await conn.execute(
        "SELECT id, session_id, rotated_at FROM refresh_tokens WHERE token_hash = %s", (token_hash,)
    )
    return await cursor.fetchone()


async def link_refresh_successor(conn: Connection, token_id: uuid.UUID, successor_id: uuid.UUID) -> None:
    await conn.execute("UPDATE refresh_tokens SET replaced_by = %s WHERE id = %s", (successor_id, token_id))


# --- one-time codes ----------------------------------------------------------------------------


async def lock_keys(conn: Connection, keys: Sequence[str]) -> None:
    """Serialise concurrent requests on the same rate-limit keys until the transaction ends.

    Callers pass keys in a fixed order (destination, then IP), so two requests
    can never wait on each other in a cycle.
    """
    for key in keys:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


async def otp_requests_by_destination(conn: Connection, destination: str, since: datetime) -> Row:
    cursor = await conn.execute(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM otp_challenges "
        "WHERE destination = %s AND created_at > %s",
        (destination, since),
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def otp_requests_by_ip(conn: Connection, ip: str, since: datetime) -> Row:
    cursor = await conn.execute(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM otp_challenges "
        "WHERE ip = %s AND created_at > %s",
        (ip, since),
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def insert_otp_challenge(
    conn: Connection,
    challenge_id: uuid.UUID,
    *,
    channel: Channel,
    destination: str,
    code_hash: str,
    ip: str | None,
    now: datetime,
    expires_at: datetime,
    max_attempts: int,
) -> None:
    await conn.execute(
        """
        INSERT INTO otp_challenges (id, channel, destination, code_hash, ip, created_at, expires_at,
                                    max_attempts)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (challenge_id, channel, destination, code_hash, ip, now, expires_at, max_attempts),
    )


async def reserve_otp_attempt(conn: Connection, destination: str, now: datetime) -> Row | None:
    """Spend one attempt on the destination's latest live code; None when there is none to try."""
    cursor = await conn.execute(
        """
        UPDATE otp_challenges SET attempts = attempts + 1
        WHERE id = (SELECT id FROM otp_challenges WHERE destination = %s ORDER BY created_at DESC LIMIT 1)
          AND consumed_at IS NULL AND expires_at > %s AND attempts < max_attempts
        RETURNING id, channel, code_hash, attempts, max_attempts
        """,
        (destination, now),
    )
    return await cursor.fetchone()


async def latest_otp_challenge(conn: Connection, destination: str) -> Row | None:
    cursor = await conn.execute(
        """
        SELECT id, attempts, max_attempts, expires_at, consumed_at FROM otp_challenges
        WHERE destination = %s ORDER BY created_at DESC LIMIT 1
        """,
        (destination,),
    )
    return await cursor.fetchone()


async def consume_otp_challenge(conn: Connection, challenge_id: uuid.UUID, now: datetime) -> bool:
    cursor = await conn.execute(
        "UPDATE otp_challenges SET consumed_at = %s WHERE id = %s AND consumed_at IS NULL RETURNING id",
        (now, challenge_id),
    )
    return await cursor.fetchone() is not None


# --- TOTP, recovery codes, second-factor challenges ------------------------------------------


async def find_totp_factor(conn: Connection, user_id: uuid.UUID) -> Row | None:
    cursor = await conn.execute(
        "SELECT secret_encrypted, confirmed_at, last_used_step FROM totp_factors WHERE user_id = %s",
        (user_id,),
    )
    return await cursor.fetchone()


async def put_pending_totp_factor(
    conn: Connection, user_id: uuid.UUID, secret_encrypted: str, now: datetime
) -> bool:
    """Store (or replace) an unconfirmed secret; False when a confirmed factor already exists."""
    cursor = await conn.execute(
        """
        INSERT INTO totp_factors (user_id, secret_encrypted, created_at) VALUES (%s, %s, %s)
        ON CONFLICT (user_id) DO UPDATE
            SET secret_encrypted = EXCLUDED.secret_encrypted, created_at = EXCLUDED.created_at,
                last_used_step = NULL
            WHERE totp_factors.confirmed_at IS NULL
        RETURNING user_id
        """,
        (user_id, secret_encrypted, now),
    )
    return await cursor.fetchone() is not None


async def use_totp_step(conn: Connection, user_id: uuid.UUID, step: int) -> bool:
    """Record that the code of ``step`` was used; False when it (or a later one) already was."""
    cursor = await conn.execute(
        """
        UPDATE totp_factors SET last_used_step = %s
        WHERE user_id = %s AND (last_used_step IS NULL OR last_used_step < %s)
        RETURNING user_id
        """,
        (step, user_id, step),
    )
    return await cursor.fetchone() is not None


async def confirm_totp_factor(conn: Connection, user_id: uuid.UUID, now: datetime) -> bool:
    cursor = await conn.execute(
        "UPDATE totp_factors SET confirmed_at = %s WHERE user_id = %s AND confirmed_at IS NULL "
        "RETURNING user_id",
        (now, user_id),
    )
    return await cursor.fetchone() is not None


async def replace_recovery_codes(
    conn: Connection, user_id: uuid.UUID, code_hashes: Sequence[str], now: datetime
) -> None:
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = %s", (user_id,))
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES (%s, %s, %s, %s)",
            [(new_id(), user_id, code_hash, now) for code_hash in code_hashes],
        )


async def use_recovery_code(conn: Connection, user_id: uuid.UUID, code_hash: str, now: datetime) -> bool:
    cursor = await conn.execute(
        """
        UPDATE recovery_codes SET used_at = %s
        WHERE user_id = %s AND code_hash = %s AND used_at IS NULL
        RETURNING id
        """,
        (now, user_id, code_hash),
    )
    return await cursor.fetchone() is not None


async def unused_recovery_codes(conn: Connection, user_id: uuid.UUID) -> int:
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM recovery_codes WHERE user_id = %s AND used_at IS NULL", (user_id,)
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row["n"])


async def insert_mfa_challenge(
    conn: Connection,
    challenge_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    token_hash: str,
    method: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    expires_at: datetime,
    max_attempts: int,
) -> None:
    await conn.execute(
        """
        INSERT INTO mfa_challenges (id, user_id, token_hash, method, ip, user_agent, created_at, expires_at,
                                    max_attempts)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (challenge_id, user_id, token_hash, method, ip, user_agent, now, expires_at, max_attempts),
    )


async def reserve_mfa_attempt(conn: Connection, token_hash: str, now: datetime) -> Row | None:
    cursor = await conn.execute(
        """
        UPDATE mfa_challenges SET attempts = attempts + 1
        WHERE token_hash = %s AND consumed_at IS NULL AND expires_at > %s AND attempts < max_attempts
        RETURNING id, user_id, method, attempts, max_attempts
        """,
        (token_hash, now),
    )
    return await cursor.fetchone()


async def consume_mfa_challenge(conn: Connection, challenge_id: uuid.UUID, now: datetime) -> bool:
    cursor = await conn.execute(
        "UPDATE mfa_challenges SET consumed_at = %s WHERE id = %s AND consumed_at IS NULL RETURNING id",
        (now, challenge_id),
    )
    return await cursor.fetchone() is not None


# --- OpenID Connect ----------------------------------------------------------------------------


async def insert_oidc_flow(
    conn: Connection,
    *,
    state: str,
    provider: str,
    nonce: str,
    code_verifier: str,
    redirect_uri: str,
    ip: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO oidc_flows (state, provider, nonce, code_verifier, redirect_uri, ip, created_at,
                                expires_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (state, provider, nonce, code_verifier, redirect_uri, ip, now, expires_at),
    )


async def oidc_flows_by_ip(conn: Connection, ip: str, since: datetime) -> Row:
    cursor = await conn.execute(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM oidc_flows WHERE ip = %s AND created_at > %s",
        (ip, since),
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def consume_oidc_flow(conn: Connection, *, state: str, provider: str, now: datetime) -> Row | None:
    """Use a flow's state once, before it expires; None for an unknown, used or expired state."""
    cursor = await conn.execute(
        """
        UPDATE oidc_flows SET consumed_at = %s
        WHERE state = %s AND provider = %s AND consumed_at IS NULL AND expires_at > %s
        RETURNING nonce, code_verifier, redirect_uri
        """,
        (now, state, provider, now),
    )
    return await cursor.fetchone()


async def find_oidc_identity(conn: Connection, provider: str, subject: str) -> Row | None:
    cursor = await conn.execute(
        "SELECT user_id FROM oidc_identities WHERE provider = %s AND subject = %s", (provider, subject)
    )
    return await cursor.fetchone()


async def insert_oidc_identity(
    conn: Connection, *, provider: str, subject: str, user_id: uuid.UUID, email: str | None, now: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO oidc_identities (provider, subject, user_id, email, created_at, last_login)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (provider, subject, user_id, email, now, now),
    )


async def touch_oidc_identity(conn: Connection, *, provider: str, subject: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE oidc_identities SET last_login = %s WHERE provider = %s AND subject = %s",
        (now, provider, subject),
    )


async def list_oidc_identities(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    cursor = await conn.execute(
        "SELECT provider, subject, email, created_at, last_login FROM oidc_identities WHERE user_id = %s "
        "ORDER BY created_at",
        (user_id,),
    )
    return await cursor.fetchall()


# --- audit trail -------------------------------------------------------------------------------


async def insert_security_event(
    conn: Connection,
    event_id: uuid.UUID,
    *,
    event: str,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    ip: str | None,
    user_agent: str | None,
    detail: Mapping[str, Any],
    now: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO security_events (id, user_id, actor_id, event, ip, user_agent, detail, occurred_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (event_id, user_id, actor_id, event, ip, user_agent, Jsonb(dict(detail)), now),
    )


async def list_security_events(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    cursor = await conn.execute(
        """
        SELECT id, event, actor_id, ip, user_agent, detail, occurred_at FROM security_events
        WHERE user_id = %s ORDER BY occurred_at, id
        """,
        (user_id,),
    )
    return await cursor.fetchall()


# --- housekeeping ------------------------------------------------------------------------------


async def delete_otp_challenges_before(conn: Connection, cutoff: datetime) -> int:
    cursor = await conn.execute("DELETE FROM otp_challenges WHERE created_at < %s", (cutoff,))
    return cursor.rowcount


async def delete_expired_mfa_challenges(conn: Connection, now: datetime) -> int:
    cursor = await conn.execute("DELETE FROM mfa_challenges WHERE expires_at < %s", (now,))
    return cursor.rowcount


async def delete_expired_oidc_flows(conn: Connection, now: datetime, *, counted_since: datetime) -> int:
    cursor = await conn.execute(
        "DELETE FROM oidc_flows WHERE expires_at < %s AND created_at < %s", (now, counted_since)
    )
    return cursor.rowcount


async def delete_refresh_tokens_of_dead_sessions(conn: Connection, now: datetime) -> int:
    """Tokens of revoked or expired sessions can never be used; live sessions keep their rotated
    tokens, which reuse detection needs."""
    cursor = await conn.execute(
        """
        DELETE FROM refresh_tokens t USING auth_sessions s
        WHERE t.session_id = s.id AND (s.revoked_at IS NOT NULL OR s.expires_at < %s)
        """,
        (now,),
    )
    return cursor.rowcount
