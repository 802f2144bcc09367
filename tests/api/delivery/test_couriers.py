"""Couriers against real PostgreSQL: onboarding, approval, shifts, GPS ingestion and its guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Role
from nearx.clock import utc_now
from nearx.ids import new_id
from tests.api.delivery.conftest import APPLICATION, Actor, MakeCourier, MakeUser

Client = AsyncTestClient[Litestar]


async def _count(conn: Any, sql: str, *args: Any) -> int:
    cur = await conn.execute(sql, args)
    row = await cur.fetchone()
    return int(next(iter(row.values())))


def _fix(at: datetime, lat: float, lng: float, accuracy_m: float = 8.0, **extra: Any) -> dict[str, Any]:
    return {"at": at.isoformat(), "lat": lat, "lng": lng, "accuracy_m": accuracy_m, **extra}


async def test_apply_is_pending_until_an_admin_approves_and_grants_the_role(
    client: Client, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    user = await make_user(Role.CUSTOMER)
    key = {"Idempotency-Key": "apply-1"}
    applied = await client.post("/v1/couriers", json=APPLICATION, headers={**user.headers, **key})
    assert applied.status_code == 201, applied.text
    courier = applied.json()
    assert (courier["status"], courier["shift"], courier["mode"]) == ("pending", "offline", "ev_scooter")
    replay = await client.post("/v1/couriers", json=APPLICATION, headers={**user.headers, **key})
    assert replay.json() == courier
    again = await client.post(
        "/v1/couriers", json=APPLICATION, headers={**user.headers, "Idempotency-Key": "2"}
    )
    assert again.status_code == 409

    # not yet a courier: the courier-only routes are closed
    shift = await client.post("/v1/couriers/me/shift", json={"shift": "online"}, headers=user.headers)
    assert shift.status_code == 403
    queue = await client.get("/v1/admin/couriers", params={"status": "pending"}, headers=admin.headers)
    assert [c["id"] for c in queue.json()["items"]] == [courier["id"]]
    decided = await client.post(
        f"/v1/admin/couriers/{courier['id']}/decision",
        json={"decision": "approve", "reason": "licence checked"},
        headers=admin.headers,
    )
    assert decided.json()["status"] == "approved"
    assert (
        await _count(
            conn, "SELECT count(*) FROM user_roles WHERE user_id = %s AND role = 'courier'", user.user_id
        )
        == 1
    )
    twice = await client.post(
        f"/v1/admin/couriers/{courier['id']}/decision",
        json={"decision": "approve", "reason": "again"},
        headers=admin.headers,
    )
    assert twice.status_code == 409
    history = await client.get("/v1/couriers/me/history", headers=user.headers)
    assert [(h["from_state"], h["to_state"]) for h in history.json()] == [
        (None, "pending"),
        ("pending", "approved"),
    ]
    assert history.json()[1]["actor_id"] == str(admin.user_id)
    events = await conn.execute(
        "SELECT event_type FROM outbox WHERE aggregate_id = %s ORDER BY position", (courier["id"],)
    )
    assert [row["event_type"] for row in await events.fetchall()] == ["courier.applied", "courier.approved"]


async def test_bad_applications_write_nothing(client: Client, make_user: MakeUser, conn: Any) -> None:
    user = await make_user(Role.CUSTOMER)
    bad = [
        {**APPLICATION, "mode": "jetpack"},
        {**APPLICATION, "bag_slots": 0},
        {**APPLICATION, "documents": []},
        {**APPLICATION, "documents": [{"kind": "id_card", "url": "ftp://x"}]},
        {**APPLICATION, "city_id": "atlantis"},
        {**APPLICATION, "surprise": True},
    ]
    for body in bad:
        response = await client.post(
            "/v1/couriers", json=body, headers={**user.headers, "Idempotency-Key": str(new_id())}
        )
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await _count(conn, "SELECT count(*) FROM couriers") == 0
    assert await _count(conn, "SELECT count(*) FROM courier_history") == 0


async def test_shift_state_machine(
    client: Client, make_courier: MakeCourier, admin: Actor, conn: Any
) -> None:
    courier, body = await make_courier(online=False)
    post = client.post
    assert (
        await post("/v1/couriers/me/shift", json={"shift": "on_break"}, headers=courier.headers)
    ).status_code == 409
    for target in ("online", "on_break", "online", "offline"):
        moved = await post("/v1/couriers/me/shift", json={"shift": target}, headers=courier.headers)
        assert moved.status_code == 200, moved.text
        assert moved.json()["shift"] == target
    assert (
        await post("/v1/couriers/me/shift", json={"shift": "offline"}, headers=courier.headers)
    ).status_code == 409
    assert (
        await post("/v1/couriers/me/shift", json={"shift": "asleep"}, headers=courier.headers)
    ).status_code == 400
    await post("/v1/couriers/me/shift", json={"shift": "online"}, headers=courier.headers)
    suspended = await post(
        f"/v1/admin/couriers/{body['id']}/decision",
        json={"decision": "suspend", "reason": "complaints"},
        headers=admin.headers,
    )
    assert (suspended.json()["status"], suspended.json()["shift"]) == ("suspended", "offline")
    assert (
        await post("/v1/couriers/me/shift", json={"shift": "online"}, headers=courier.headers)
    ).status_code == 409
    shifts = await conn.execute(
        "SELECT from_state, to_state, actor_id FROM courier_history "
        "WHERE courier_id = %s AND machine = 'shift' ORDER BY at, id",
        (body["id"],),
    )
    rows = await shifts.fetchall()
    assert [(r["from_state"], r["to_state"]) for r in rows][-2:] == [
        ("offline", "online"),
        ("online", "offline"),
    ]
    assert rows[-1]["actor_id"] == admin.user_id


async def test_locations_move_the_latest_position_and_flag_implausible_fixes(
    client: Client, make_courier: MakeCourier, conn: Any
) -> None:
    courier, body = await make_courier()
    now = utc_now().replace(microsecond=0)
    fixes = [
        _fix(now - timedelta(seconds=60), 27.7000, 85.3200),
        _fix(now - timedelta(seconds=50), 27.7003, 85.3202),  # ~40 m in 10 s: fine for a scooter
        _fix(now - timedelta(seconds=40), 27.8000, 85.3202),  # 11 km in 10 s: a jump
        _fix(now - timedelta(seconds=30), 27.7005, 85.3204, accuracy_m=400.0),  # a poor fix
        _fix(now + timedelta(hours=2), 27.7006, 85.3205),  # from the future
        _fix(now - timedelta(seconds=20), 27.7006, 85.3206, speed_mps=90.0),  # reports 324 km/h
        _fix(now - timedelta(seconds=10), 27.7008, 85.3207),
    ]
    receipt = await client.post("/v1/couriers/me/locations", json={"fixes": fixes}, headers=courier.headers)
    assert receipt.status_code == 200, receipt.text
    verdicts = receipt.json()["verdicts"]
    assert [v["flags"] for v in verdicts] == [
        [],
        [],
        ["too_fast"],
        ["inaccurate"],
        ["future"],
        ["too_fast"],
        [],
    ]
    assert receipt.json()["used"] == 3
    position = receipt.json()["position"]
    assert (position["lat"], position["lng"]) == (27.7008, 85.3207)
    assert position["h3_r9"].startswith("89")
    stored = await conn.execute(
        "SELECT lat, flags, tableoid::regclass::text AS part FROM courier_track "
        "WHERE courier_id = %s ORDER BY fixed_at",
        (body["id"],),
    )
    rows = await stored.fetchall()
    assert len(rows) == 6  # everything but the future fix, flags and all
    assert {row["part"] for row in rows} == {
        f"courier_track_{(now - timedelta(seconds=60)).date():%Y%m%d}"
    } | ({f"courier_track_{now.date():%Y%m%d}"})
    # re-sending the batch changes nothing; an older fix never moves the position back
    again = await client.post("/v1/couriers/me/locations", json={"fixes": fixes}, headers=courier.headers)
    assert again.json()["used"] == 0
    assert await _count(conn, "SELECT count(*) FROM courier_track WHERE courier_id = %s", body["id"]) == 6
    late = await client.post(
        "/v1/couriers/me/locations",
        json={"fixes": [_fix(now - timedelta(minutes=5), 27.71, 85.33)]},
        headers=courier.headers,
    )
    assert late.json()["verdicts"][0]["flags"] == ["stale"]
    assert late.json()["position"]["lat"] == 27.7008


async def test_track_partitions_are_created_per_day_on_demand(
    client: Client, make_courier: MakeCourier, conn: Any
) -> None:
    courier, _ = await make_courier()
    now = utc_now()
    moments = [now - timedelta(days=2), now - timedelta(days=1), now - timedelta(minutes=1)]
    fixes = [_fix(at, 27.70 + i * 0.001, 85.32) for i, at in enumerate(moments)]
    response = await client.post("/v1/couriers/me/locations", json={"fixes": fixes}, headers=courier.headers)
    assert response.status_code == 200, response.text
    parts = await conn.execute(
        "SELECT inhrelid::regclass::text AS name FROM pg_inherits "
        "WHERE inhparent = 'courier_track'::regclass ORDER BY 1"
    )
    names = [row["name"] for row in await parts.fetchall()]
    assert names == sorted({f"courier_track_{at.date():%Y%m%d}" for at in moments})
    assert len(names) >= 2


async def test_location_guards_and_bad_batches_write_nothing(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, conn: Any
) -> None:
    now = utc_now()
    batch = {"fixes": [_fix(now, 27.70, 85.32)]}
    customer = await make_user(Role.CUSTOMER)
    assert (
        await client.post("/v1/couriers/me/locations", json=batch, headers=customer.headers)
    ).status_code == 403
    offline, _ = await make_courier(online=False)
    assert (
        await client.post("/v1/couriers/me/locations", json=batch, headers=offline.headers)
    ).status_code == 409
    courier, _ = await make_courier()
    bad_batches = [
        {"fixes": []},
        {"fixes": [_fix(now, 91.0, 85.32)]},
        {"fixes": [_fix(now, 27.70, 185.0)]},
        {"fixes": [_fix(now, 27.70, 85.32, accuracy_m=-1)]},
        {"fixes": [{"at": now.replace(tzinfo=None).isoformat(), "lat": 27.7, "lng": 85.32, "accuracy_m": 5}]},
        {"fixes": [_fix(now - timedelta(days=30), 27.70, 85.32)]},
        {"fixes": [_fix(now, 27.70, 85.32, altitude=3)]},
    ]
    for bad in bad_batches:
        response = await client.post("/v1/couriers/me/locations", json=bad, headers=courier.headers)
        assert response.status_code in (400, 422), (bad, response.text)
    assert await _count(conn, "SELECT count(*) FROM courier_track") == 0
    assert await _count(conn, "SELECT count(*) FROM courier_positions") == 0


def test_plausibility_rules_are_pure() -> None:
    from api.domains.couriers.plausibility import Anchor, RawFix, judge

    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    last = Anchor(27.70, 85.32, t0)
    walk = 15 / 3.6
    fixes = [
        RawFix(27.7001, 85.32, t0 + timedelta(seconds=30), 5, None),  # 11 m in 30 s
        RawFix(27.7101, 85.32, t0 + timedelta(seconds=40), 5, None),  # 1.1 km in 10 s on foot
        RawFix(27.7002, 85.32, t0 + timedelta(seconds=50), 5, None),  # judged against the last *used* fix
    ]
    assert judge(fixes, last, walk, t0 + timedelta(minutes=1)) == [[], ["too_fast"], []]
    # out of order in the batch: judged in time order
    assert judge(list(reversed(fixes)), last, walk, t0 + timedelta(minutes=1)) == [[], ["too_fast"], []]
