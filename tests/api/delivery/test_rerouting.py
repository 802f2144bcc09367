"""Rerouting: problems reported by couriers, route deviation, couriers gone silent, and the ETA."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from api.domains.delivery.rerouting import DEVIATION_FIXES, DEVIATION_M, deviation_step
from nearx.clock import utc_now
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import Client, at_position, merchant_order, offers, round_now

NEAR_KITCHEN = (27.7101, 85.3201)


async def _assigned(client: Client, admin: Actor, courier: Actor) -> str:
    await round_now(client, admin)
    offer = (await offers(client, courier))["pending"][0]
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=courier.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["eta_at"] is not None  # the customer's ETA is set on assignment
    return str(accepted.json()["id"])


async def _drive(
    client: Client, courier: Actor, points: list[tuple[float, float]], *, ending_minutes_ago: float = 0.0
) -> None:
    """One batch of fixes, a minute apart (plausible for an e-scooter)."""
    now = utc_now() - timedelta(minutes=ending_minutes_ago)
    fixes = [
        {
            "at": (now - timedelta(minutes=len(points) - 1 - i)).isoformat(),
            "lat": lat,
            "lng": lng,
            "accuracy_m": 5,
        }
        for i, (lat, lng) in enumerate(points)
    ]
    sent = await client.post("/v1/couriers/me/locations", json={"fixes": fixes}, headers=courier.headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["used"] == len(points), sent.text


def _away(steps: int, *, km_each: float = 1.0) -> list[tuple[float, float]]:
    """Points heading north from the kitchen, ``km_each`` apart."""
    return [(NEAR_KITCHEN[0] + 0.009 * km_each * (i + 1), NEAR_KITCHEN[1]) for i in range(steps)]


async def _delivery(conn: Any, delivery_id: str) -> Any:
    return await (await conn.execute("SELECT * FROM deliveries WHERE id = %s", (delivery_id,))).fetchone()


async def _problems(client: Client, admin: Actor) -> list[dict[str, Any]]:
    listed = await client.get("/v1/admin/delivery-problems", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    return list(listed.json())


@pytest.mark.parametrize(
    ("best", "counting", "distance", "expected"),
    [
        (None, 0, 900.0, (900.0, 0)),  # first fix: the closest approach so far
        (900.0, 2, 500.0, (500.0, 0)),  # closer: a new best, the count restarts
        (500.0, 0, 500.0 + DEVIATION_M, (500.0, 0)),  # within the threshold: jitter, a detour
        (500.0, 1, 501.0 + DEVIATION_M, (500.0, 2)),  # beyond it: counts
    ],
)
def test_deviation_step(
    best: float | None, counting: int, distance: float, expected: tuple[float, int]
) -> None:
    assert deviation_step(best, counting, distance) == expected


async def test_a_problem_before_pickup_returns_the_delivery_to_dispatch(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    broken, _ = await make_courier()
    await at_position(client, broken, *NEAR_KITCHEN)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, broken)

    path = f"/v1/couriers/me/deliveries/{delivery_id}/problem"
    bad = await client.post(path, json={"kind": "flat tyre"}, headers=broken.headers)
    assert bad.status_code == 400
    reported = await client.post(
        path, json={"kind": "vehicle_breakdown", "note": "chain snapped"}, headers=broken.headers
    )
    assert reported.status_code == 201, reported.text
    assert (reported.json()["rerouted"], reported.json()["status_at"]) == (True, "assigned")
    row = await _delivery(conn, delivery_id)
    assert (row["status"], row["courier_id"], row["eta_at"]) == ("pending", None, None)
    history = await client.get(f"/v1/admin/deliveries/{delivery_id}/history", headers=admin.headers)
    assert history.json()[-1]["reason"] == "courier reported vehicle_breakdown"
    assert [p["kind"] for p in await _problems(client, admin)] == ["vehicle_breakdown"]

    other, _ = await make_courier()
    await at_position(client, other, 27.7120, 85.3220)
    await round_now(client, admin)
    assert (await offers(client, broken))["pending"] == []
    assert [o["delivery_id"] for o in (await offers(client, other))["pending"]] == [delivery_id]


async def test_a_problem_after_pickup_goes_to_support_not_dispatch(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, *NEAR_KITCHEN)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)
    for step in ("at_pickup", "picked_up"):
        moved = await client.post(
            f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": step}, headers=courier.headers
        )
        assert moved.status_code == 200, moved.text
    reported = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/problem",
        json={"kind": "unsafe_area"},
        headers=courier.headers,
    )
    assert reported.status_code == 201, reported.text
    assert reported.json()["rerouted"] is False
    assert (await _delivery(conn, delivery_id))["status"] == "picked_up"
    problem_id = reported.json()["id"]
    resolve = f"/v1/admin/delivery-problems/{problem_id}/resolve"
    resolved = await client.post(
        resolve, json={"resolution": "goods handed to a second courier"}, headers=admin.headers
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolved_at"] is not None) == ("resolved", True)
    assert await _problems(client, admin) == []
    again = await client.post(resolve, json={"resolution": "twice"}, headers=admin.headers)
    assert again.status_code == 404
    event = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'delivery.problem_reported' AND aggregate_id = %s",
            (delivery_id,),
        )
    ).fetchone()
    assert (event["payload"]["priority"], event["payload"]["kind"]) == ("high", "unsafe_area")
    stranger, _ = await make_courier()
    foreign = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/problem", json={"kind": "other"}, headers=stranger.headers
    )
    assert foreign.status_code == 404


async def test_moving_away_from_the_pickup_reroutes_but_jitter_does_not(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, *NEAR_KITCHEN, minutes_ago=30)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)

    jitter = [(NEAR_KITCHEN[0] + 0.003 * (i % 2), NEAR_KITCHEN[1]) for i in range(DEVIATION_FIXES + 2)]
    await _drive(client, courier, jitter, ending_minutes_ago=20)  # ~330 m back and forth: under the threshold
    assert (await _delivery(conn, delivery_id))["status"] == "assigned"

    await _drive(client, courier, _away(DEVIATION_FIXES + 1))
    row = await _delivery(conn, delivery_id)
    assert (row["status"], row["courier_id"]) == ("pending", None)
    problems = await _problems(client, admin)
    assert [(p["kind"], p["reported_by"], p["rerouted"]) for p in problems] == [
        ("route_deviation", "system", True)
    ]


async def test_moving_away_after_pickup_alerts_support_and_refreshes_the_eta(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, *NEAR_KITCHEN, minutes_ago=30)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)
    for step in ("at_pickup", "picked_up"):
        await client.post(
            f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": step}, headers=courier.headers
        )
    before = (await _delivery(conn, delivery_id))["eta_at"]

    await _drive(client, courier, _away(DEVIATION_FIXES + 1))  # north, away from the drop-off (south-east)
    row = await _delivery(conn, delivery_id)
    assert (row["status"], row["eta_at"] > before) == ("picked_up", True)
    reasons = await (
        await conn.execute(
            "SELECT payload->>'reason' AS reason FROM outbox WHERE event_type = 'delivery.eta_updated' "
            "AND aggregate_id = %s ORDER BY position",
            (delivery_id,),
        )
    ).fetchall()
    assert [r["reason"] for r in reasons] == ["assigned", "picked_up", "route deviation"]
    assert [(p["kind"], p["rerouted"]) for p in await _problems(client, admin)] == [
        ("route_deviation", False)
    ]


async def test_a_courier_gone_silent_with_the_goods_is_flagged_once_and_keeps_the_delivery(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, courier_body = await make_courier()
    await at_position(client, courier, *NEAR_KITCHEN)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned(client, admin, courier)
    for step in ("at_pickup", "picked_up"):
        await client.post(
            f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": step}, headers=courier.headers
        )
    await conn.execute(
        "UPDATE courier_positions SET fixed_at = now() - interval '20 minutes' WHERE courier_id = %s",
        (courier_body["id"],),
    )
    await conn.execute(
        "UPDATE deliveries SET updated_at = now() - interval '20 minutes' WHERE id = %s", (delivery_id,)
    )
    assert (await round_now(client, admin))["silent_alerts"] == 1
    assert (await round_now(client, admin))["silent_alerts"] == 0  # already with support
    row = await _delivery(conn, delivery_id)
    assert (row["status"], str(row["courier_id"])) == ("picked_up", courier_body["id"])
    assert [(p["kind"], p["reported_by"]) for p in await _problems(client, admin)] == [
        ("courier_silent", "system")
    ]
