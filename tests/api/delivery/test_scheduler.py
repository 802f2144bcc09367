"""Dispatch rounds on a schedule: the serve-time loop, the CLI, and one round per city at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row
from typer.testing import CliRunner

from api.app import create_app
from api.domains.delivery.eta import city_eta, plugged, routing_predictors
from api.domains.delivery.scheduler import dispatch_pass
from nearx import cli
from nearx.routing import Mode, elementwise_haversine_m
from nearx.settings import Settings, get_settings, load_settings
from tests.api.delivery.conftest import MakeCourier, MakeUser
from tests.api.delivery.scenario import Client, at_position, merchant_order
from tests.nearx.test_roadgraph import write_pbf

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


def test_the_routing_predictors_price_legs_with_the_provider_nearx_routing_selects(tmp_path: Path) -> None:
    side = 32  # a 32 x 32 street grid: over the road graph's 1,000-node floor for a usable component
    nodes = {r * 100 + c + 1: (60.0 + r * 0.001, 24.0 + c * 0.002) for r in range(side) for c in range(side)}
    streets = [(1_000 + r, [r * 100 + c + 1 for c in range(side)]) for r in range(side)]
    avenues = [(2_000 + c, [r * 100 + c + 1 for r in range(side)]) for c in range(side)]
    pbf = write_pbf(
        tmp_path / "grid.osm.pbf",
        nodes,
        [(way_id, refs, {"highway": "residential"}) for way_id, refs in streets + avenues],
    )
    graph = load_settings(
        {"NEARX_HOME": str(tmp_path), "NEARX_ROUTING": "graph", "NEARX_ROUTING_PBF": str(pbf)}
    )
    city = {"id": "kathmandu", "timezone": "Asia/Kathmandu"}
    corner, turn = np.array([[60.0, 24.0]]), np.array([[60.0, 24.002]])
    opposite = np.array([[60.001, 24.002]])
    kathmandu = (np.array([[27.70, 85.32]]), np.array([[27.71, 85.33]]))
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    with plugged(routing_predictors(graph)):
        metres, _ = city_eta(city).travel(corner, opposite, [Mode.BICYCLE], now)
        two_sides = elementwise_haversine_m(corner, turn) + elementwise_haversine_m(turn, opposite)
        assert metres == pytest.approx(two_sides, rel=1e-3)  # round the block, not the diagonal
        off_the_graph, _ = city_eta(city).travel(*kathmandu, [Mode.BICYCLE], now)  # haversine answers
    haversine, _ = city_eta(city).travel(*kathmandu, [Mode.BICYCLE], now)  # nothing plugged any more
    assert np.isfinite(haversine).all()
    np.testing.assert_array_equal(off_the_graph, haversine)
