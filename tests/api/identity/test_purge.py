"""Housekeeping: expired sign-in state goes, what limits and reuse detection need stays."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from nearx import cli
from nearx.settings import Settings, get_settings
from tests.api.identity.conftest import Client, count, request_code, sign_in


async def test_purge_keeps_what_is_still_needed(
    client: Client, settings: Settings, conn: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await sign_in(client, settings, "+9779805555555")
    await client.post("/v1/auth/refresh", json={"refresh_token": live["refresh_token"]})  # a rotated token
    dead = await sign_in(client, settings, "+9779806666666")
    await client.post("/v1/auth/logout", headers={"Authorization": f"Bearer {dead['access_token']}"})
    await request_code(client, "+9779807777777")
    await conn.execute(
        "UPDATE otp_challenges SET created_at = now() - interval '2 hours' WHERE destination <> %s",
        ("+9779807777777",),
    )
    await conn.execute(
        "INSERT INTO oidc_flows "
        "(state, provider, nonce, code_verifier, redirect_uri, created_at, expires_at) "
        "SELECT state, 'p', 'n', 'v', 'https://r', now() - created, now() - created + interval '10 minutes' "
        "FROM (VALUES ('old', interval '2 hours'), ('counted', interval '20 minutes'), "
        "('new', interval '0')) "
        "AS f (state, created)"
    )

    monkeypatch.setenv("NEARX_HOME", str(settings.home))
    monkeypatch.setenv("NEARX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        # in a thread: the command runs its own event loop, as it does from a shell
        result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["identity", "purge"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "otp_challenges: 2 deleted" in result.output

    assert await count(conn, "otp_challenges") == 1  # the recent one still counts towards the limits
    # an expired flow still inside the rate window is kept: the per-IP limit counts it
    flows = await (await conn.execute("SELECT state FROM oidc_flows ORDER BY state")).fetchall()
    assert [r["state"] for r in flows] == ["counted", "new"]
    # the live session keeps both tokens (reuse detection), the signed-out one loses its token
    rows = await (
        await conn.execute(
            "SELECT s.revoked_at IS NULL AS live, count(t.id) AS tokens FROM auth_sessions s "
            "LEFT JOIN refresh_tokens t ON t.session_id = s.id GROUP BY s.id, s.revoked_at ORDER BY live"
        )
    ).fetchall()
    assert [(r["live"], r["tokens"]) for r in rows] == [(False, 0), (True, 2)]
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": live["refresh_token"]})
    assert replay.status_code == 401
