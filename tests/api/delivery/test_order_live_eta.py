"""The order's ETA after pickup is refreshed from the courier's live position (orders' reading
endpoints), through the same predictor as dispatch; before pickup there is none."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.security.principal import Role
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import KITCHEN, Client, at_position, merchant_order, offers, round_now


async def _live(client: Client, customer: Actor, order_id: Any) -> Any:
    response = await client.get(f"/v1/merchant-orders/{order_id}", headers=customer.headers)
    assert response.status_code == 200, response.text
    return response.json()["eta_live"]


async def test_after_pickup_the_eta_follows_the_courier(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    customer = await make_user(Role.CUSTOMER)
    await at_position(client, courier, *KITCHEN, minutes_ago=10)
    order_id = await merchant_order(conn, make_user, customer=customer)
    assert (await round_now(client, admin))["offered"] == 1
    (offer,) = (await offers(client, courier))["pending"]
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=courier.headers)
    assert accepted.status_code == 200, accepted.text
    assert await _live(client, customer, order_id) is None  # not picked up yet
    path = f"/v1/couriers/me/deliveries/{offer['delivery_id']}/status"
    for step in ("at_pickup", "picked_up"):
        assert (await client.post(path, json={"to": step}, headers=courier.headers)).status_code == 200

    far = await _live(client, customer, order_id)
    assert far["degraded"] == "no_model"  # no champion in this home: the routing provider priced the leg
    assert far["model"] is None
    assert datetime.fromisoformat(far["p50_at"]) <= datetime.fromisoformat(far["p90_at"])
    await at_position(client, courier, 27.7010, 85.3290)  # almost at the door (scenario.HOME)
    near = await _live(client, customer, order_id)
    assert datetime.fromisoformat(near["position_at"]) > datetime.fromisoformat(far["position_at"])
    assert datetime.fromisoformat(near["p50_at"]) < datetime.fromisoformat(far["p50_at"])
