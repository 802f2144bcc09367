"""The worker's revocation list: what bearer authentication refuses without asking the database,
how the list learns other workers' revocations, when it is bypassed, and what it forgets."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row

from api.app import create_app
from api.security.middleware import BearerAuthenticationMiddleware
from api.security.principal import Principal, Role
from api.security.revocations import SLACK, RevocationList
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings, load_settings
from tests.api.identity.conftest import bearer, sign_in

Client = AsyncTestClient[Litestar]
PHONE = "+9779801234567"
REVOKED = "the session has been revoked"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A poll interval no test outlives: the lifespan's own list is only refreshed at start-up, so
    # what a test sees comes from logout (noted at once) or from a refresh the test drives itself.
    return load_settings({"NEARX_HOME": str(tmp_path / "nearx"), "NEARX_REVOCATION_POLL_S": "3600"})


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Wall:
    """A wall clock the test moves by hand, starting at the real now (revocations are stamped by it)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


async def _driven_list(
    app: Litestar, settings: Settings, conn: Any, clock: Clock | None = None
) -> RevocationList:
    """Install a list only the test refreshes, as another worker's revocations reach it."""
    revocations = RevocationList(
        token_ttl=timedelta(seconds=settings.access_token_ttl_s),
        poll_s=settings.revocation_poll_s,
        clock=clock or Clock(),
    )
    await revocations.refresh(conn)
    app.state.revocations = revocations
    return revocations


async def _revoke_in_database(conn: Any, token: str, settings: Settings) -> None:
    """Revoke the token's session the way another worker would: in the database only."""
    session_id = TokenCodec(settings).verify(token).session_id
    await conn.execute(
        "UPDATE auth_sessions SET revoked_at = now(), revoke_reason = 'elsewhere' WHERE id = %s",
        (session_id,),
    )


async def _me(client: Client, token: str) -> Any:
    return await client.get("/v1/me", headers=bearer(token))


async def test_logout_refuses_the_same_token_at_once(
    client: Client, settings: Settings, app: Litestar
) -> None:
    body = await sign_in(client, settings, PHONE)
    assert (await _me(client, body["access_token"])).status_code == 200
    assert (await client.post("/v1/auth/logout", headers=bearer(body["access_token"]))).status_code == 204

    assert app.state.revocations.is_current()  # answered from the list, not the database
    refused = await _me(client, body["access_token"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == REVOKED


async def test_refresh_token_reuse_refuses_the_access_token_at_once(
    client: Client, settings: Settings, app: Litestar
) -> None:
    first = await sign_in(client, settings, PHONE)
    newest = (await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401

    assert TokenCodec(settings).verify(newest["access_token"]).session_id in app.state.revocations
    assert (await _me(client, newest["access_token"])).json()["detail"] == REVOKED


async def test_another_workers_revocation_is_refused_after_the_next_poll(
    client: Client, settings: Settings, app: Litestar, conn: Any
) -> None:
    revocations = await _driven_list(app, settings, conn)
    body = await sign_in(client, settings, PHONE)
    await _revoke_in_database(conn, body["access_token"], settings)

    # Until this worker polls, the token still works: that is the stated bound.
    assert (await _me(client, body["access_token"])).status_code == 200
    assert await revocations.refresh(conn) == 1
    refused = await _me(client, body["access_token"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == REVOKED


async def test_a_token_without_a_stored_session_still_works(
    client: Client, settings: Settings, app: Litestar, conn: Any
) -> None:
    clock = Clock()
    revocations = await _driven_list(app, settings, conn, clock)
    principal = Principal(user_id=new_id(), roles=frozenset({Role.CUSTOMER}), session_id=new_id())
    token = TokenCodec(settings).issue(principal, now=utc_now())
    # logout of an unknown session revokes nothing, so the probe can be repeated
    assert (await client.post("/v1/auth/logout", headers=bearer(token))).status_code == 204
    assert principal.session_id not in revocations
    clock.now = revocations.max_age_s  # and through the database fallback too
    assert (await client.post("/v1/auth/logout", headers=bearer(token))).status_code == 204


async def test_a_stale_list_falls_back_to_the_database(
    client: Client, settings: Settings, app: Litestar, conn: Any
) -> None:
    clock = Clock()
    revocations = await _driven_list(app, settings, conn, clock)
    body = await sign_in(client, settings, PHONE)
    await _revoke_in_database(conn, body["access_token"], settings)

    clock.now = revocations.max_age_s - 1  # still trusted: the list answers (and does not know yet)
    assert (await _me(client, body["access_token"])).status_code == 200
    clock.now = revocations.max_age_s  # polls stopped succeeding 5 intervals ago: ask the database
    assert not revocations.is_current()
    refused = await _me(client, body["access_token"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == REVOKED


async def test_with_the_list_turned_off_every_request_asks_the_database(
    tmp_path: Path, db_url: str, conn: Any
) -> None:
    settings = load_settings({"NEARX_HOME": str(tmp_path / "nearx"), "NEARX_REVOCATION_POLL_S": "0"})
    async with AsyncTestClient(app=create_app(settings, db_url=db_url)) as client:
        assert client.app.state.revocations is None
        body = await sign_in(client, settings, PHONE)
        await _revoke_in_database(conn, body["access_token"], settings)
        assert (await _me(client, body["access_token"])).json()["detail"] == REVOKED


async def test_an_app_without_pool_or_list_authenticates_by_signature(settings: Settings) -> None:
    @get("/whoami", sync_to_thread=False)
    def whoami(request: Request[Principal, Any, Any]) -> str:
        return str(request.user.session_id)

    codec = TokenCodec(settings)
    app = Litestar(
        route_handlers=[whoami],
        state=State({"token_codec": codec}),
        middleware=[DefineMiddleware(BearerAuthenticationMiddleware)],
    )
    principal = Principal(user_id=new_id(), roles=frozenset({Role.CUSTOMER}), session_id=new_id())
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/whoami", headers=bearer(codec.issue(principal, now=utc_now())))
        assert response.status_code == 200
        assert response.text == str(principal.session_id)
        assert (await client.get("/whoami")).status_code == 401


# --- the list itself -----------------------------------------------------------------------------


StoreSession = Callable[[datetime | None], Awaitable[uuid.UUID]]


@pytest.fixture
async def store_session(conn: Any) -> StoreSession:
    """Store a session of one user, revoked at the given time (``None``: live); returns its id."""
    user_id = new_id()
    await conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (user_id, f"{user_id}@example.com"))

    async def store(revoked_at: datetime | None) -> uuid.UUID:
        session_id = new_id()
        await conn.execute(
            "INSERT INTO auth_sessions (id, user_id, method, expires_at, revoked_at) "
            "VALUES (%s, %s, 'otp', %s, %s)",
            (session_id, user_id, utc_now() + timedelta(days=30), revoked_at),
        )
        return session_id

    return store


def _list(wall: Wall, *, ttl_s: int = 900) -> RevocationList:
    return RevocationList(token_ttl=timedelta(seconds=ttl_s), poll_s=1.0, clock=Clock(), wall=wall)


async def test_start_up_loads_only_revocations_whose_tokens_may_still_verify(
    conn: Any, store_session: StoreSession
) -> None:
    wall = Wall()
    revocations = _list(wall)
    long_ago = await store_session(wall.now - revocations.window - timedelta(seconds=1))
    recent = await store_session(wall.now - timedelta(minutes=5))
    live = await store_session(None)
    assert not revocations.is_current()  # never refreshed
    assert await revocations.refresh(conn) == 1
    assert revocations.is_current()
    assert recent in revocations
    assert long_ago not in revocations
    assert live not in revocations
    assert len(revocations) == 1


async def test_entries_are_pruned_once_their_tokens_have_expired(
    conn: Any, store_session: StoreSession
) -> None:
    wall = Wall()
    revocations = _list(wall)
    polled = await store_session(wall.now)
    await revocations.refresh(conn)
    noted = new_id()
    revocations.note([noted], wall.now + timedelta(minutes=1))

    wall.now += revocations.window  # the token lifetime (plus slack) after the polled revocation
    await revocations.refresh(conn)
    assert polled not in revocations
    assert noted in revocations
    assert len(revocations) == 1
    wall.now += timedelta(minutes=1)
    await revocations.refresh(conn)
    assert len(revocations) == 0


async def test_a_revocation_committed_after_a_later_stamped_one_is_still_seen(
    conn: Any, store_session: StoreSession
) -> None:
    wall = Wall()
    revocations = _list(wall)
    await store_session(wall.now)
    await revocations.refresh(conn)
    # stamped before the newest one seen (its transaction committed late, or its clock is behind)
    late = await store_session(wall.now - SLACK + timedelta(seconds=1))
    assert await revocations.refresh(conn) == 2  # the overlap re-reads the newest one too
    assert late in revocations


async def test_a_failed_poll_keeps_the_list_until_it_is_stale(
    conn: Any, store_session: StoreSession, db_url: str
) -> None:
    wall = Wall()
    clock = Clock()
    revocations = RevocationList(token_ttl=timedelta(seconds=900), poll_s=1.0, clock=clock, wall=wall)
    session_id = await store_session(wall.now)
    await revocations.refresh(conn)

    broken = await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row)
    await broken.close()
    clock.now = 1.0
    with pytest.raises(psycopg.OperationalError):
        await revocations.refresh(broken)
    assert session_id in revocations
    assert revocations.is_current()  # dated from the last successful refresh, at 0
    clock.now = revocations.max_age_s
    assert not revocations.is_current()


async def test_a_clock_running_ahead_does_not_hide_later_revocations(
    conn: Any, store_session: StoreSession
) -> None:
    wall = Wall()
    revocations = _list(wall)
    await store_session(wall.now + timedelta(minutes=2))  # stamped by a worker whose clock is ahead
    await revocations.refresh(conn)
    on_time = await store_session(wall.now - timedelta(seconds=1))
    await revocations.refresh(conn)
    assert on_time in revocations
