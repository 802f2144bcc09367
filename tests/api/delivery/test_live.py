"""Live tracking over WebSocket, against real servers on ephemeral ports and a real client.

Two API servers share one database, as two workers would: the relay runs in
one, the sockets connect to the other, so every message crosses the bus
(outbox -> relay -> event stream -> NOTIFY) or the positions NOTIFY, never an
in-process shortcut.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import h3
import httpx
import pytest
import uvicorn
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from api.app import create_app
from api.security.principal import Role
from nearx.settings import Settings
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import Client, at_position, merchant_order, round_now

WAIT_S = 15.0
"""Upper bound for a message to arrive (a bound on a hang, not a speed assertion)."""


@contextmanager
def serving(app: Litestar) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1 and an ephemeral port; yields host:port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "the server did not start"
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture
async def workers(settings: Settings, db_url: str) -> AsyncIterator[tuple[str, str]]:
    """Two API workers on one database: the first also runs the outbox relay."""
    with (
        serving(create_app(settings, db_url=db_url, run_relay=True)) as first,
        serving(create_app(settings, db_url=db_url)) as second,
    ):
        yield first, second


def _ws(address: str, path: str, actor: Actor | None) -> Any:
    headers = actor.headers if actor else {}
    return connect(f"ws://{address}{path}", additional_headers=headers, open_timeout=WAIT_S)


async def _next(ws: ClientConnection, kind: str, **expected: Any) -> dict[str, Any]:
    """The next message of ``kind`` whose fields match ``expected`` (others are skipped)."""

    async def wait() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind and all(message.get(k) == v for k, v in expected.items()):
                return dict(message)

    return await asyncio.wait_for(wait(), timeout=WAIT_S)


async def _delivery_of(conn: Any, merchant_order_id: Any) -> str:
    row = await (
        await conn.execute("SELECT id FROM deliveries WHERE merchant_order_id = %s", (merchant_order_id,))
    ).fetchone()
    return str(row["id"])


async def test_customer_and_courier_follow_a_delivery_live_across_workers(
    workers: tuple[str, str],
    client: Client,
    make_courier: MakeCourier,
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
) -> None:
    first, second = workers
    courier, courier_body = await make_courier()
    customer = await make_user(Role.CUSTOMER)
    waiting = (27.7113, 85.3214)
    await at_position(client, courier, *waiting, minutes_ago=10)
    order_id = await merchant_order(conn, make_user, customer=customer)

    async with _ws(second, "/v1/couriers/me/live", courier) as offers_ws:
        assert json.loads(await offers_ws.recv()) == {"type": "offers", "pending": []}
        async with httpx.AsyncClient(base_url=f"http://{first}") as http:
            ran = await http.post(
                "/v1/admin/dispatch/rounds", json={"city_id": "kathmandu"}, headers=admin.headers
            )
        assert ran.json()["offered"] == 1
        offer = await _next(offers_ws, "offer")
        delivery_id = await _delivery_of(conn, order_id)
        assert offer["delivery_id"] == delivery_id
        accepted = await client.post(
            f"/v1/couriers/me/offers/{offer['offer_id']}/accept", headers=courier.headers
        )
        assert accepted.status_code == 200, accepted.text
        closed = await _next(offers_ws, "offer_closed")
        assert (closed["offer_id"], closed["outcome"]) == (offer["offer_id"], "accepted")

    async with _ws(second, f"/v1/deliveries/{delivery_id}/live", customer) as live:
        snapshot = json.loads(await live.recv())
        assert (snapshot["type"], snapshot["status"], snapshot["courier_mode"]) == (
            "snapshot",
            "assigned",
            courier_body["mode"],
        )
        assert snapshot["eta_at"] is not None
        shown = snapshot["courier_position"]
        centre = h3.cell_to_latlng(h3.latlng_to_cell(*waiting, 8))
        assert (shown["lat"], shown["lng"], shown["precise"]) == (*centre, False)

        moved = (27.7105, 85.3205)
        await at_position(client, courier, *moved, minutes_ago=5)
        position = await _next(live, "position")
        assert (position["lat"], position["lng"]) == h3.cell_to_latlng(h3.latlng_to_cell(*moved, 8))
        assert position["precise"] is False
        assert (position["lat"], position["lng"]) != moved

        path = f"/v1/couriers/me/deliveries/{delivery_id}/status"
        for step in ("at_pickup", "picked_up"):
            assert (await client.post(path, json={"to": step}, headers=courier.headers)).status_code == 200
            await _next(live, "status", status=step)
        eta = await _next(live, "eta")
        assert eta["eta_at"] is not None

        on_the_way = (27.7050, 85.3250)
        await at_position(client, courier, *on_the_way)
        precise = await _next(live, "position", precise=True)
        assert (precise["lat"], precise["lng"]) == on_the_way

    view = await client.get(f"/v1/deliveries/{delivery_id}", headers=customer.headers)
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "picked_up"
    assert view.json()["courier_position"]["precise"] is True


async def test_only_the_deliverys_customer_and_a_courier_may_subscribe(
    workers: tuple[str, str],
    client: Client,
    make_courier: MakeCourier,
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
) -> None:
    _, second = workers
    customer = await make_user(Role.CUSTOMER)
    stranger = await make_user(Role.CUSTOMER)
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    order_id = await merchant_order(conn, make_user, customer=customer)
    await round_now(client, admin)
    path = f"/v1/deliveries/{await _delivery_of(conn, order_id)}/live"

    for intruder in (stranger, courier, None):
        with pytest.raises(InvalidStatus) as refused:
            async with _ws(second, path, intruder):
                pass
        assert refused.value.response.status_code == 403
    other = await client.get(path.removesuffix("/live"), headers=stranger.headers)
    assert other.status_code == 404
    with pytest.raises(InvalidStatus):
        async with _ws(second, "/v1/couriers/me/live", customer):  # not a courier
            pass
    async with _ws(second, path, customer) as live:
        assert json.loads(await live.recv())["status"] == "offered"
