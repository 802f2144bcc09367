"""The functions other contexts call: export_identity and revoke_all_sessions."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.identity import service, sessions
from api.domains.identity.audit import RequestContext
from api.security.tokens import TokenCodec
from nearx.ids import new_id
from nearx.settings import Settings


async def _user_with_session(conn: Any, settings: Settings) -> tuple[Any, sessions.TokenPair]:
    user_id = new_id()
    await conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (user_id, f"{user_id}@example.com"))
    await conn.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, 'customer')", (user_id,))
    async with conn.transaction():
        pair = await sessions.start_session(
            conn,
            settings,
            TokenCodec(settings),
            user_id=user_id,
            method="otp",
            mfa=False,
            context=RequestContext(ip="10.0.0.1", user_agent="pytest"),
        )
    return user_id, pair


async def test_export_identity_has_roles_sessions_and_events_without_secrets(
    conn: Any, settings: Settings
) -> None:
    user_id, pair = await _user_with_session(conn, settings)
    exported = await service.export_identity(conn, user_id)
    assert [role["role"] for role in exported["roles"]] == ["customer"]
    assert [s["id"] for s in exported["sessions"]] == [str(pair.session_id)]
    assert exported["sessions"][0]["ip"] == "10.0.0.1"
    assert [e["event"] for e in exported["security_events"]] == ["session.signed_in"]
    text = repr(exported)
    assert pair.refresh_token not in text
    assert "hash" not in text


async def test_revoke_all_sessions_stops_refresh_and_access_tokens(
    conn: Any, settings: Settings, app: Litestar, client: AsyncTestClient[Litestar]
) -> None:
    user_id, pair = await _user_with_session(conn, settings)
    _, other = await _user_with_session(conn, settings)
    revoked = await service.revoke_all_sessions(conn, user_id, reason="account deleted")
    assert revoked == [pair.session_id]
    # revoked outside the app, as by another worker: the app's list learns it on its next poll
    await app.state.revocations.refresh(conn)

    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert refreshed.status_code == 401
    logout = await client.post("/v1/auth/logout", headers={"Authorization": f"Bearer {pair.access_token}"})
    assert logout.status_code == 401
    assert logout.json()["detail"] == "the session has been revoked"
    # another user's session is untouched
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": other.refresh_token})
    ).status_code == 200
    events = await (
        await conn.execute(
            "SELECT event, detail FROM security_events WHERE user_id = %s ORDER BY occurred_at", (user_id,)
        )
    ).fetchall()
    assert events[-1]["event"] == "session.revoked"
    assert events[-1]["detail"]["reason"] == "account deleted"
