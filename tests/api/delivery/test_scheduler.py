"""Dispatch rounds on a schedule: the serve-time loop, the CLI, and one round per city at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row
from typer.testing import CliRunner

from api.app import create_app
from api.domains.delivery.scheduler import dispatch_pass
from nearx import cli
from nearx.settings import Settings, get_settings, load_settings
from tests.api.delivery.conftest import MakeCourier, MakeUser
from tests.api.delivery.scenario import Client, at_position, merchant_order

WAIT_S = 15.0
"""Upper bound for the loop to show its effect (a bound on a hang, not a speed assertion)."""


async def _eventually(check: Callable[[], Awaitable[Any]]) -> Any:
    async def poll() -> Any:
        while not (found := await check()):  # noqa: ASYNC110 (polls the database: no event to await)
            await asyncio.sleep(0.05)
        return found

    return await asyncio.wait_for(poll(), timeout=WAIT_S)


async def _offer_of(conn: Any, merchant_order_id: Any) -> Any:
    cur = await conn.execute(
        "SELECT f.id, f.status, d.id AS delivery_id, d.declines FROM delivery_offers f "
        "JOIN deliveries d ON d.id = f.delivery_id WHERE d.merchant_order_id = %s",
        (merchant_order_id,),
    )
    return await cur.fetchone()


async def test_the_serve_loop_makes_offers_and_expires_them(
    tmp_path: Path, db_url: str, client: Client, make_courier: MakeCourier, make_user: MakeUser, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    order_id = await merchant_order(conn, make_user)
    settings = load_settings({"NEARX_HOME": str(tmp_path / "loop"), "NEARX_DISPATCH_INTERVAL_S": "0.2"})

    async with AsyncTestClient(app=create_app(settings, db_url=db_url, run_dispatch=True)):
        offer = await _eventually(lambda: _offer_of(conn, order_id))
        assert offer["status"] == "pending"
        await conn.execute(
            "UPDATE delivery_offers SET offered_at = now() - interval '2 minutes', "
            "expires_at = now() - interval '1 minute' WHERE id = %s",
            (offer["id"],),
        )

        async def expired() -> Any:
            row = await _offer_of(conn, order_id)
            return row if row["status"] == "expired" else None

        row = await _eventually(expired)
    assert row["declines"] == 1
    status = await (
        await conn.execute("SELECT status FROM deliveries WHERE id = %s", (row["delivery_id"],))
    ).fetchone()
    assert status["status"] == "pending"  # back to dispatch, never again to the same courier


async def test_a_zero_interval_turns_the_loop_off(
    tmp_path: Path, db_url: str, make_user: MakeUser, conn: Any
) -> None:
    order_id = await merchant_order(conn, make_user)
    settings = load_settings({"NEARX_HOME": str(tmp_path / "off"), "NEARX_DISPATCH_INTERVAL_S": "0"})
    async with AsyncTestClient(app=create_app(settings, db_url=db_url, run_dispatch=True)) as off:
        assert (await off.get("/healthz")).status_code == 200
        opened = await (
            await conn.execute(
                "SELECT count(*) AS n FROM deliveries WHERE merchant_order_id = %s", (order_id,)
            )
        ).fetchone()
    assert opened["n"] == 0


async def test_a_city_being_dispatched_elsewhere_is_skipped(
    db_url: str, make_user: MakeUser, conn: Any
) -> None:
    await merchant_order(conn, make_user)
    await conn.execute("SELECT pg_advisory_lock(hashtext('nearx.dispatch:kathmandu'))")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as other:
        assert await dispatch_pass(other) == {}
        await conn.execute("SELECT pg_advisory_unlock(hashtext('nearx.dispatch:kathmandu'))")
        reports = await dispatch_pass(other)
    assert list(reports) == ["kathmandu"]
    assert reports["kathmandu"].opened == 1


async def test_cli_runs_one_pass(
    settings: Settings, db_url: str, make_user: MakeUser, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await merchant_order(conn, make_user)
    monkeypatch.setenv("NEARX_HOME", str(settings.home))
    monkeypatch.setenv("NEARX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli.app, ["dispatch", "run", "--city", "kathmandu"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "kathmandu: opened 1, expired 0, offered 0, waiting 1" in result.output
