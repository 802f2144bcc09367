"""Refresh-token rotation, reuse detection, logout, and access-token verification."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest

from api.errors import Unauthenticated
from api.security.principal import Principal, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.settings import Settings, load_settings
from tests.api.identity.conftest import Client, bearer, sign_in

PHONE = "+9779801234567"
FIRST_SECRET = "first-secret-" + "0123456789" * 3
SECOND_SECRET = "second-secret-" + "0123456789" * 3


async def _refresh(client: Client, token: str) -> Any:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_token(client: Client, settings: Settings, conn: Any) -> None:
    first = await sign_in(client, settings, PHONE)
    rotated = await _refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    pair = rotated.json()
    assert pair["refresh_token"] != first["refresh_token"]
    codec = TokenCodec(settings)
    assert codec.verify(pair["access_token"]).session_id == codec.verify(first["access_token"]).session_id
    # the new one works in turn
    assert (await _refresh(client, pair["refresh_token"])).status_code == 200
    rows = await (
        await conn.execute("SELECT rotated_at, replaced_by FROM refresh_tokens ORDER BY created_at")
    ).fetchall()
    assert [row["rotated_at"] is not None for row in rows] == [True, True, False]
    assert all(row["replaced_by"] is not None for row in rows[:2])


async def test_reusing_a_rotated_token_revokes_the_whole_family(
    client: Client, settings: Settings, conn: Any
) -> None:
    first = await sign_in(client, settings, PHONE)
    newest = (await _refresh(client, first["refresh_token"])).json()

    replay = await _refresh(client, first["refresh_token"])
    assert replay.status_code == 401
    assert replay.headers["content-type"].startswith("application/problem+json")
    # the newest refresh token and the session's access token stop working too
    assert (await _refresh(client, newest["refresh_token"])).status_code == 401
    me = await client.post("/v1/auth/logout", headers=bearer(newest["access_token"]))
    assert me.status_code == 401
    session = await (await conn.execute("SELECT revoked_at, revoke_reason FROM auth_sessions")).fetchone()
    assert session["revoked_at"] is not None
    assert session["revoke_reason"] == "refresh token reuse"
    events = await (
        await conn.execute("SELECT event FROM security_events WHERE event = 'refresh.reused'")
    ).fetchall()
    assert len(events) == 1


async def test_reuse_in_one_session_leaves_other_sessions_alone(client: Client, settings: Settings) -> None:
    phone_session = await sign_in(client, settings, PHONE)
    other_device = await sign_in(client, settings, PHONE)
    await _refresh(client, phone_session["refresh_token"])
    await _refresh(client, phone_session["refresh_token"])  # reuse: revokes that family only
    assert (await _refresh(client, other_device["refresh_token"])).status_code == 200


async def test_unknown_and_expired_refresh_tokens_are_refused(
    client: Client, settings: Settings, conn: Any
) -> None:
    assert (await _refresh(client, "x" * 43)).status_code == 401
    body = await sign_in(client, settings, PHONE)
    await conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    assert (await _refresh(client, body["refresh_token"])).status_code == 401


async def test_logout_revokes_the_session(client: Client, settings: Settings, conn: Any) -> None:
    body = await sign_in(client, settings, PHONE)
    response = await client.post("/v1/auth/logout", headers=bearer(body["access_token"]))
    assert response.status_code == 204
    assert (await _refresh(client, body["refresh_token"])).status_code == 401
    again = await client.post("/v1/auth/logout", headers=bearer(body["access_token"]))
    assert again.status_code == 401
    assert again.json()["detail"] == "the session has been revoked"
    events = await (
        await conn.execute("SELECT event FROM security_events WHERE event = 'session.signed_out'")
    ).fetchall()
    assert len(events) == 1


async def test_logout_needs_a_token(client: Client) -> None:
    response = await client.post("/v1/auth/logout")
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthenticated"


def _principal() -> Principal:
    return Principal(user_id=uuid.uuid4(), roles=frozenset({Role.CUSTOMER}), session_id=uuid.uuid4())


def _expired(settings: Settings) -> str:
    return TokenCodec(settings).issue(_principal(), now=utc_now() - timedelta(hours=1))


def _forged(settings: Settings) -> str:
    other = load_settings(
        {
            "NEARX_HOME": str(settings.home),
            "NEARX_JWT_KEYS": "sandbox:not-the-real-secret-but-long-enough-0123456789",
        }
    )
    return TokenCodec(other).issue(_principal(), now=utc_now())


def _unknown_kid(settings: Settings) -> str:
    other = load_settings(
        {
            "NEARX_HOME": str(settings.home),
            "NEARX_JWT_KEYS": "retired:whatever-secret-long-enough-for-hs256-0123456789",
        }
    )
    return TokenCodec(other).issue(_principal(), now=utc_now())


def _alg_none(settings: Settings) -> str:
    claims = jwt.decode(
        TokenCodec(settings).issue(_principal(), now=utc_now()), options={"verify_signature": False}
    )
    return jwt.encode(claims, key=None, algorithm="none", headers={"kid": "sandbox"})


BAD_TOKENS: list[tuple[Any, str]] = [
    (_expired, "access token has expired"),
    (_forged, "access token is not valid"),
    (_unknown_kid, "access token was signed with an unknown key"),
    (_alg_none, "access token is not valid"),
    (lambda _: "not.a.jwt", "access token is not valid"),
]


async def test_bad_access_tokens_are_401_problems(client: Client, settings: Settings, conn: Any) -> None:
    for make, detail in BAD_TOKENS:
        response = await client.post("/v1/auth/logout", headers=bearer(make(settings)))
        assert response.status_code == 401, detail
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"] == detail
    row = await (await conn.execute("SELECT count(*) AS n FROM security_events")).fetchone()
    assert row["n"] == 0


async def test_a_retired_key_still_verifies_during_rotation(tmp_path: Any) -> None:
    old = load_settings({"NEARX_HOME": str(tmp_path), "NEARX_JWT_KEYS": f"k1:{FIRST_SECRET}"})
    new = load_settings(
        {
            "NEARX_HOME": str(tmp_path),
            "NEARX_JWT_KEYS": f"k2:{SECOND_SECRET},k1:{FIRST_SECRET}",
        }
    )
    token = TokenCodec(old).issue(_principal(), now=utc_now())
    assert TokenCodec(new).verify(token).roles == frozenset({Role.CUSTOMER})
    assert jwt.get_unverified_header(TokenCodec(new).issue(_principal(), now=utc_now()))["kid"] == "k2"


def test_a_remembered_token_is_still_refused_once_it_expires(settings: Settings) -> None:
    codec = TokenCodec(settings)
    principal = _principal()
    issued_at = utc_now() - codec.ttl + timedelta(seconds=1.5)
    token = codec.issue(principal, now=issued_at)
    assert codec.verify(token) == codec.verify(token) == principal
    expires_at = int((issued_at + codec.ttl).timestamp())  # the ``exp`` claim
    time.sleep(max(0.0, expires_at - time.time() + 0.05))
    with pytest.raises(Unauthenticated, match="expired"):
        codec.verify(token)
