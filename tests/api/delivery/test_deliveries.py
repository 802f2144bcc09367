"""Dispatch rounds, offers and the delivery state machine against real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api.domains.delivery import service
from api.security.principal import Role
from nearx.clock import utc_now
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import HOME, KITCHEN, Client, at_position, merchant_order, offers, round_now


async def test_round_offer_accept_and_deliver_records_emissions(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    near, near_body = await make_courier()
    far, _ = await make_courier()
    await at_position(client, near, 27.7110, 85.3210)
    await at_position(client, far, 27.7400, 85.3500)
    await merchant_order(conn, make_user)

    report = await round_now(client, admin)
    assert (report["opened"], report["offered"], report["waiting"]) == (1, 1, 0)
    assert (await offers(client, far))["pending"] == []
    offer = (await offers(client, near))["pending"][0]
    assigned = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=near.headers)
    assert assigned.status_code == 200, assigned.text
    delivery = assigned.json()
    assert (delivery["status"], delivery["courier_id"]) == ("assigned", near_body["id"])

    path = f"/v1/couriers/me/deliveries/{delivery['id']}/status"
    at_door = {"lat": HOME[0], "lng": HOME[1]}
    skipped = await client.post(path, json={"to": "delivered", "proof": at_door}, headers=near.headers)
    assert skipped.status_code == 409
    for step in ("at_pickup", "picked_up"):
        moved = await client.post(path, json={"to": step}, headers=near.headers)
        assert moved.status_code == 200, moved.text
    proof = {"lat": HOME[0] + 0.0005, "lng": HOME[1]}  # ~55 m away: at the door
    moved = await client.post(path, json={"to": "delivered", "proof": proof}, headers=near.headers)
    assert moved.status_code == 200, moved.text
    done = moved.json()
    assert done["mode"] == "ev_scooter"
    assert done["distance_m"] > 1_000
    # Nepal's hydro grid: the e-scooter emits a tiny fraction of a petrol car on the same legs
    assert 0 < done["kg_co2e"] < done["baseline_kg_co2e"] / 50
    history = await client.get(f"/v1/admin/deliveries/{delivery['id']}/history", headers=admin.headers)
    assert [h["to_status"] for h in history.json()] == [
        "pending",
        "offered",
        "assigned",
        "at_pickup",
        "picked_up",
        "delivered",
    ]
    events = await conn.execute(
        "SELECT event_type, payload FROM outbox WHERE aggregate_id = %s ORDER BY position", (delivery["id"],)
    )
    rows = await events.fetchall()
    assert rows[-1]["event_type"] == "delivery.delivered"
    assert rows[-1]["payload"]["kg_co2e"] == done["kg_co2e"]
    per_courier = await (
        await conn.execute(
            "SELECT count(*) AS n, sum(saving_kg_co2e) AS saved FROM delivery_emissions "
            "WHERE courier_id = %s",
            (near_body["id"],),
        )
    ).fetchone()
    assert per_courier["n"] == 1
    assert per_courier["saved"] == done["baseline_kg_co2e"] - done["kg_co2e"]
    # free again: the next round may offer this courier work
    assert (
        await conn.execute("SELECT idle_since FROM couriers WHERE id = %s", (near_body["id"],))
    ).rowcount == 1


async def test_decline_returns_the_delivery_and_never_reoffers_to_the_same_courier(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    near, near_body = await make_courier()
    far, far_body = await make_courier()
    await at_position(client, near, 27.7105, 85.3205)
    await at_position(client, far, 27.7300, 85.3400)
    await merchant_order(conn, make_user)
    await round_now(client, admin)
    offer = (await offers(client, near))["pending"][0]
    declined = await client.post(
        f"/v1/couriers/me/offers/{offer['id']}/decline", json={"reason": "flat tyre"}, headers=near.headers
    )
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["declines"]) == ("pending", 1)
    assert (await offers(client, near))["refused_last_24h"] == 1
    again = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=near.headers)
    assert again.status_code == 409

    report = await round_now(client, admin)
    assert report["offered"] == 1
    assert (await offers(client, near))["pending"] == []
    assert len((await offers(client, far))["pending"]) == 1
    # with the other courier declining too, nobody is left: the delivery waits
    second = (await offers(client, far))["pending"][0]
    await client.post(f"/v1/couriers/me/offers/{second['id']}/decline", json={}, headers=far.headers)
    assert (await round_now(client, admin))["waiting"] == 1
    assert far_body["id"] != near_body["id"]


async def test_unanswered_offers_expire_into_the_next_round(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    slow, _ = await make_courier()
    other, _ = await make_courier()
    await at_position(client, slow, 27.7101, 85.3201)
    await at_position(client, other, 27.7200, 85.3300)
    await merchant_order(conn, make_user)
    first = await service.run_round(conn, "kathmandu")
    assert first.offered == 1
    later = await service.run_round(conn, "kathmandu", now=utc_now() + timedelta(minutes=2))
    assert (later.expired, later.offered) == (1, 1)
    assert (await offers(client, slow))["refused_last_24h"] == 1
    assert len((await offers(client, other))["pending"]) == 1


async def test_emergency_order_gets_the_only_courier(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, *KITCHEN)
    await merchant_order(conn, make_user, at=(27.7101, 85.3201))
    urgent = await merchant_order(conn, make_user, at=(27.7300, 85.3400), emergency=True)
    report = await round_now(client, admin)
    assert (report["offered"], report["waiting"]) == (1, 1)
    offer = (await offers(client, courier))["pending"][0]
    delivery = await conn.execute(
        "SELECT merchant_order_id FROM deliveries WHERE id = %s", (offer["delivery_id"],)
    )
    assert (await delivery.fetchone())["merchant_order_id"] == urgent


async def test_couriers_cannot_act_on_each_others_work(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    owner, _ = await make_courier()
    intruder, _ = await make_courier(online=False)
    await at_position(client, owner, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    await round_now(client, admin)
    offer = (await offers(client, owner))["pending"][0]
    assert (
        await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=intruder.headers)
    ).status_code == 404
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=owner.headers)
    delivery_id = accepted.json()["id"]
    before = await (
        await conn.execute("SELECT status, updated_at FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    stolen = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": "at_pickup"}, headers=intruder.headers
    )
    assert stolen.status_code == 404
    assert (
        await client.get(f"/v1/couriers/me/deliveries/{delivery_id}", headers=intruder.headers)
    ).status_code == 404
    bad = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": "teleported"}, headers=owner.headers
    )
    assert bad.status_code == 400
    after = await (
        await conn.execute("SELECT status, updated_at FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert after == before
    customer = await make_user(Role.CUSTOMER)
    assert (await client.get("/v1/couriers/me/offers", headers=customer.headers)).status_code == 403
    assert (
        await client.post(
            "/v1/admin/dispatch/rounds", json={"city_id": "kathmandu"}, headers=customer.headers
        )
    ).status_code == 403
    assert (
        await client.post("/v1/admin/dispatch/rounds", json={"city_id": "atlantis"}, headers=admin.headers)
    ).status_code == 422


async def _assigned(client: Client, admin: Actor, courier: Actor) -> str:
    await round_now(client, admin)
    offer = (await offers(client, courier))["pending"][0]
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=courier.headers)
    assert accepted.status_code == 200, accepted.text
    return str(accepted.json()["id"])


async def test_courier_going_offline_returns_the_delivery_to_dispatch(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    leaving, leaving_body = await make_courier()
    staying, staying_body = await make_courier()
    await at_position(client, leaving, 27.7101, 85.3201)
    await at_position(client, staying, 27.7300, 85.3400)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, leaving)
    gone = await client.post("/v1/couriers/me/shift", json={"shift": "offline"}, headers=leaving.headers)
    assert gone.status_code == 200, gone.text
    row = await (
        await conn.execute("SELECT status, courier_id FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert (row["status"], row["courier_id"]) == ("pending", None)
    history = await client.get(f"/v1/admin/deliveries/{delivery_id}/history", headers=admin.headers)
    assert history.json()[-1]["reason"] == "courier went offline"
    await round_now(client, admin)
    offer = (await offers(client, staying))["pending"][0]
    assert offer["delivery_id"] == delivery_id
    assert staying_body["id"] != leaving_body["id"]


async def test_cannot_go_offline_holding_picked_up_goods(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)
    for step in ("at_pickup", "picked_up"):
        await client.post(
            f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": step}, headers=courier.headers
        )
    refused = await client.post("/v1/couriers/me/shift", json={"shift": "offline"}, headers=courier.headers)
    assert refused.status_code == 409
    me = await client.get("/v1/couriers/me", headers=courier.headers)
    assert me.json()["shift"] == "online"
    row = await (await conn.execute("SELECT status FROM deliveries WHERE id = %s", (delivery_id,))).fetchone()
    assert row["status"] == "picked_up"


async def test_a_stalled_courier_loses_the_delivery_at_the_next_round(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    stalled, _ = await make_courier()
    other, _ = await make_courier()
    await at_position(client, stalled, 27.7101, 85.3201)
    await at_position(client, other, 27.7300, 85.3400)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, stalled)
    report = await service.run_round(
        conn, "kathmandu", now=utc_now() + service.STALL_AFTER + timedelta(minutes=1)
    )
    assert report.offered == 1
    offer = (await offers(client, other))["pending"][0]
    assert offer["delivery_id"] == delivery_id
    history = await client.get(f"/v1/admin/deliveries/{delivery_id}/history", headers=admin.headers)
    assert [h["reason"] for h in history.json()][-2] == "courier stalled"


async def test_proof_of_delivery_place_and_handover_code(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    merchant_order_id = await merchant_order(conn, make_user, category="pharmacy")
    delivery_id = await _assigned(client, admin, courier)
    path = f"/v1/couriers/me/deliveries/{delivery_id}/status"
    for step in ("at_pickup", "picked_up"):
        await client.post(path, json={"to": step}, headers=courier.headers)
    customer_row = await (
        await conn.execute("SELECT customer_id FROM merchant_orders WHERE id = %s", (merchant_order_id,))
    ).fetchone()
    customer = Actor(customer_row["customer_id"], {}, courier.app).with_roles(Role.CUSTOMER)
    shown = await client.get(f"/v1/deliveries/{delivery_id}/handover-code", headers=customer.headers)
    assert shown.status_code == 200, shown.text
    code = shown.json()["code"]
    stranger = await make_user(Role.CUSTOMER)
    assert (
        await client.get(f"/v1/deliveries/{delivery_id}/handover-code", headers=stranger.headers)
    ).status_code == 404

    at_door = {"lat": HOME[0], "lng": HOME[1]}
    before = await (
        await conn.execute("SELECT status, proof FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    for bad in (
        {"to": "delivered"},  # no proof
        {"to": "delivered", "proof": {"lat": 27.7200, "lng": 85.3300, "code": code}},  # 2 km away
        {"to": "delivered", "proof": at_door},  # code missing
        {"to": "delivered", "proof": {**at_door, "code": "12a4"}},  # not a code
    ):
        refused = await client.post(path, json=bad, headers=courier.headers)
        assert refused.status_code in (400, 422), (bad, refused.text)
    after = await (
        await conn.execute("SELECT status, proof FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert after == before
    wrong = f"{(int(code) + 1) % 10_000:04d}"
    refused = await client.post(
        path, json={"to": "delivered", "proof": {**at_door, "code": wrong}}, headers=courier.headers
    )
    assert refused.status_code == 422
    failures = await (
        await conn.execute("SELECT proof_failures FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert failures["proof_failures"] == 1
    done = await client.post(
        path, json={"to": "delivered", "proof": {**at_door, "code": code}}, headers=courier.headers
    )
    assert done.status_code == 200, done.text
    stored = await (
        await conn.execute("SELECT proof FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert stored["proof"]["kind"] == "code"
    assert stored["proof"]["distance_m"] < 1


async def test_too_many_wrong_codes_need_support(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user, category="pharmacy")
    delivery_id = await _assigned(client, admin, courier)
    path = f"/v1/couriers/me/deliveries/{delivery_id}/status"
    for step in ("at_pickup", "picked_up"):
        await client.post(path, json={"to": step}, headers=courier.headers)
    await conn.execute("UPDATE deliveries SET proof_failures = 5 WHERE id = %s", (delivery_id,))
    guess = {"to": "delivered", "proof": {"lat": HOME[0], "lng": HOME[1], "code": "0000"}}
    response = await client.post(path, json=guess, headers=courier.headers)
    assert response.status_code == 409, response.text


async def test_sos_freezes_the_delivery_until_support_resolves_it(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, courier_body = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)
    for bad in ({"lat": 95, "lng": 85.3}, {"lng": 85.3}, {"lat": 27.7, "lng": 85.3, "panic": True}):
        refused = await client.post("/v1/couriers/me/sos", json=bad, headers=courier.headers)
        assert refused.status_code == 400, refused.text
    assert (await (await conn.execute("SELECT count(*) AS n FROM sos_incidents")).fetchone())["n"] == 0

    raised = await client.post(
        "/v1/couriers/me/sos",
        json={"lat": 27.7102, "lng": 85.3202, "note": "accident"},
        headers=courier.headers,
    )
    assert raised.status_code == 201, raised.text
    incident = raised.json()
    event = await (
        await conn.execute(
            "SELECT event_type, payload FROM outbox WHERE aggregate_id = %s", (incident["id"],)
        )
    ).fetchone()
    assert event["event_type"] == "sos.raised"
    assert event["payload"]["priority"] == "critical"
    assert event["payload"]["deliveries"] == [delivery_id]
    path = f"/v1/couriers/me/deliveries/{delivery_id}/status"
    assert (await client.post(path, json={"to": "at_pickup"}, headers=courier.headers)).status_code == 409
    # frozen: neither the stall rule nor going offline moves it
    await service.run_round(conn, "kathmandu", now=utc_now() + service.STALL_AFTER + timedelta(minutes=1))
    assert (
        await client.post("/v1/couriers/me/shift", json={"shift": "offline"}, headers=courier.headers)
    ).status_code == 409
    row = await (
        await conn.execute("SELECT status, courier_id FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
    assert (row["status"], str(row["courier_id"])) == ("assigned", courier_body["id"])

    queue = await client.get("/v1/admin/sos", headers=admin.headers)
    assert [i["id"] for i in queue.json()] == [incident["id"]]
    resolved = await client.post(
        f"/v1/admin/sos/{incident['id']}/resolve", json={"resolution": "courier safe"}, headers=admin.headers
    )
    assert resolved.json()["status"] == "resolved"
    assert (await client.post(path, json={"to": "at_pickup"}, headers=courier.headers)).status_code == 200
