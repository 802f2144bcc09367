"""Merchant onboarding, the approval workflow, hours, the busy switch and staff roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.merchants.hours import Interval, is_open
from api.security.principal import Role
from tests.api.marketplace.conftest import KTM, Actor, MakeMerchant, MakeUser


async def _count(conn: Any, table: str) -> int:
    row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
    return int(row["n"])


async def test_application_resolves_city_and_h3_and_waits_for_approval(
    client: AsyncTestClient[Litestar], make_user: MakeUser, conn: Any
) -> None:
    owner = await make_user(Role.MERCHANT)
    body = {"kind": "provider", "category": "plumber", "name": "Pipes", "lat": 18.52, "lng": 73.85}
    response = await client.post("/v1/merchants", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    merchant = response.json()
    assert merchant["city_id"] == "pune"
    assert merchant["status"] == "pending"
    row = await (
        await conn.execute("SELECT h3_r7, h3_r9 FROM merchants WHERE id = %s", (merchant["id"],))
    ).fetchone()
    assert row["h3_r7"].startswith("87")
    assert row["h3_r9"].startswith("89")
    staff = await (await conn.execute("SELECT user_id, role FROM merchant_staff")).fetchall()
    assert [(s["user_id"], s["role"]) for s in staff] == [(owner.user_id, "owner")]
    events = await (await conn.execute("SELECT event_type FROM outbox")).fetchall()
    assert [e["event_type"] for e in events] == ["merchant.applied"]

    stranger = await make_user()
    hidden = await client.get(f"/v1/merchants/{merchant['id']}", headers=stranger.headers)
    assert hidden.status_code == 404
    listed = await client.get("/v1/merchants", headers=stranger.headers)
    assert listed.json()["items"] == []
    own = await client.get(f"/v1/merchants/{merchant['id']}", headers=owner.headers)
    assert own.status_code == 200


async def test_point_outside_every_city_is_refused_and_writes_nothing(
    client: AsyncTestClient[Litestar], make_user: MakeUser, conn: Any
) -> None:
    owner = await make_user(Role.MERCHANT)
    # inside Kathmandu's bounding box but outside its (octagonal) boundary: the corner
    body = {"kind": "merchant", "category": "grocery", "name": "X", "lat": 27.605, "lng": 85.205}
    response = await client.post("/v1/merchants", json=body, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/invalid-input"
    assert await _count(conn, "merchants") == 0
    assert await _count(conn, "outbox") == 0


async def test_admin_decisions_follow_the_workflow_and_are_recorded(
    client: AsyncTestClient[Litestar], make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    owner = await make_user(Role.MERCHANT)
    created = await client.post(
        "/v1/merchants",
        json={"kind": "merchant", "category": "pharmacy", "name": "Meds", **KTM},
        headers=owner.headers,
    )
    merchant_id = created.json()["id"]
    url = f"/v1/admin/merchants/{merchant_id}/decision"

    no_mfa = await make_user(Role.ADMIN, mfa=False)
    assert (
        await client.post(url, json={"decision": "approve", "reason": "ok ok"}, headers=no_mfa.headers)
    ).status_code == 403
    assert (
        await client.post(url, json={"decision": "approve", "reason": "ok ok"}, headers=owner.headers)
    ).status_code == 403

    rejected = await client.post(
        url, json={"decision": "reject", "reason": "licence missing"}, headers=admin.headers
    )
    assert rejected.json()["status"] == "rejected"
    illegal = await client.post(url, json={"decision": "suspend", "reason": "because"}, headers=admin.headers)
    assert illegal.status_code == 409

    history = await client.get(f"/v1/merchants/{merchant_id}/history", headers=owner.headers)
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in history.json()] == [
        (None, "pending", "application filed"),
        ("pending", "rejected", "licence missing"),
    ]
    assert history.json()[1]["actor_id"] == str(admin.user_id)


async def test_staff_roles_are_checked_per_merchant(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser
) -> None:
    owner, merchant = await make_merchant()
    _, other_merchant = await make_merchant()
    clerk = await make_user()
    url = f"/v1/merchants/{merchant['id']}"
    added = await client.post(
        f"{url}/staff", json={"user_id": str(clerk.user_id), "role": "staff"}, headers=owner.headers
    )
    assert added.status_code == 201

    # staff may flip the busy switch, but not change the radius; and not at another merchant
    paused = await client.put(f"{url}/pause", json={"paused": True}, headers=clerk.headers)
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert paused.json()["open_now"] is False
    assert (
        await client.patch(url, json={"delivery_radius_m": 900}, headers=clerk.headers)
    ).status_code == 403
    other = await client.put(
        f"/v1/merchants/{other_merchant['id']}/pause", json={"paused": True}, headers=clerk.headers
    )
    assert other.status_code == 403
    # only the owner manages staff, and cannot be removed
    promote = {"user_id": str(clerk.user_id), "role": "manager"}
    assert (await client.post(f"{url}/staff", json=promote, headers=clerk.headers)).status_code == 403
    assert (await client.post(f"{url}/staff", json=promote, headers=owner.headers)).status_code == 201
    assert (await client.patch(url, json={"delivery_radius_m": 900}, headers=clerk.headers)).json()[
        "delivery_radius_m"
    ] == 900
    assert (await client.delete(f"{url}/staff/{owner.user_id}", headers=owner.headers)).status_code == 409
    assert (await client.delete(f"{url}/staff/{clerk.user_id}", headers=owner.headers)).status_code == 204
    assert (
        await client.put(f"{url}/pause", json={"paused": False}, headers=clerk.headers)
    ).status_code == 403


async def test_hours_validation_and_open_now(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant
) -> None:
    owner, merchant = await make_merchant()
    url = f"/v1/merchants/{merchant['id']}/hours"
    overlapping = {
        "hours": [
            {"weekday": 0, "opens": "09:00:00", "closes": "13:00:00"},
            {"weekday": 0, "opens": "12:00:00", "closes": "18:00:00"},
        ]
    }
    assert (await client.put(url, json=overlapping, headers=owner.headers)).status_code == 422
    backwards = {"hours": [{"weekday": 0, "opens": "18:00:00", "closes": "09:00:00"}]}
    assert (await client.put(url, json=backwards, headers=owner.headers)).status_code == 422
    never = {"hours": [{"weekday": d, "opens": "00:00:00", "closes": "00:00:01"} for d in range(7)]}
    response = await client.put(url, json=never, headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["open_now"] is False


def test_is_open_uses_the_city_local_time_and_holidays() -> None:
    from datetime import UTC, date, time

    hours = [Interval(0, time(9), time(17))]  # Mondays 09:00-17:00 local
    monday_0330_utc = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)  # 09:15 in Kathmandu (+05:45)
    assert is_open(hours, set(), "Asia/Kathmandu", monday_0330_utc)
    monday_0320_utc = datetime(2026, 11, 23, 3, 20, tzinfo=UTC)  # 09:05 Kathmandu, 08:50 Pune
    assert is_open(hours, set(), "Asia/Kathmandu", monday_0320_utc)
    assert not is_open(hours, set(), "Asia/Kolkata", monday_0320_utc)
    assert not is_open(hours, {date(2026, 11, 23)}, "Asia/Kathmandu", monday_0330_utc)


async def test_staff_role_changes_are_audited_and_emitted(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser, conn: Any
) -> None:
    owner, merchant = await make_merchant()
    clerk = await make_user()
    url = f"/v1/merchants/{merchant['id']}/staff"
    for role in ("staff", "manager", "manager"):  # the repeated role is not a change
        body = {"user_id": str(clerk.user_id), "role": role}
        assert (await client.post(url, json=body, headers=owner.headers)).status_code == 201
    assert (await client.delete(f"{url}/{clerk.user_id}", headers=owner.headers)).status_code == 204

    audit = await (
        await conn.execute(
            "SELECT event, actor_id, detail FROM security_events WHERE user_id = %s ORDER BY occurred_at, id",
            (clerk.user_id,),
        )
    ).fetchall()
    assert [(a["event"], a["detail"]["previous_role"], a["detail"]["role"]) for a in audit] == [
        ("merchant_role.granted", None, "staff"),
        ("merchant_role.granted", "staff", "manager"),
        ("merchant_role.revoked", "manager", None),
    ]
    assert {a["actor_id"] for a in audit} == {owner.user_id}
    assert {a["detail"]["merchant_id"] for a in audit} == {merchant["id"]}
    events = await (
        await conn.execute(
            "SELECT event_type, payload FROM outbox WHERE aggregate_id = %s"
            " AND event_type LIKE 'merchant.staff_%%' ORDER BY position",
            (merchant["id"],),
        )
    ).fetchall()
    assert [(e["event_type"], e["payload"]["role"]) for e in events] == [
        ("merchant.staff_changed", "staff"),
        ("merchant.staff_changed", "manager"),
        ("merchant.staff_removed", None),
    ]
    assert {e["payload"]["user_id"] for e in events} == {str(clerk.user_id)}


async def test_refused_staff_change_leaves_no_audit_row(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser, conn: Any
) -> None:
    _, merchant = await make_merchant()
    intruder = await make_user()
    body = {"user_id": str(intruder.user_id), "role": "manager"}
    refused = await client.post(f"/v1/merchants/{merchant['id']}/staff", json=body, headers=intruder.headers)
    assert refused.status_code == 403
    assert await _count(conn, "security_events WHERE event LIKE 'merchant_role.%%'") == 0


async def test_eco_packaging_is_set_at_application_and_by_managers(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser, conn: Any
) -> None:
    _, plain = await make_merchant()
    assert plain["eco_packaging"] is False  # the column's default when an applicant says nothing
    owner, merchant = await make_merchant(eco_packaging=True)
    assert merchant["eco_packaging"] is True
    url = f"/v1/merchants/{merchant['id']}"

    clerk = await make_user()
    await client.post(
        f"{url}/staff", json={"user_id": str(clerk.user_id), "role": "staff"}, headers=owner.headers
    )
    refused = await client.patch(url, json={"eco_packaging": False}, headers=clerk.headers)
    assert refused.status_code == 403
    not_a_flag = await client.patch(url, json={"eco_packaging": "yes"}, headers=owner.headers)
    assert not_a_flag.status_code == 400

    changed = await client.patch(url, json={"eco_packaging": False}, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["eco_packaging"] is False
    row = await (
        await conn.execute("SELECT eco_packaging FROM merchants WHERE id = %s", (merchant["id"],))
    ).fetchone()
    assert row["eco_packaging"] is False
    updates = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'merchant.updated' AND aggregate_id = %s",
            (merchant["id"],),
        )
    ).fetchall()
    assert [u["payload"]["changes"] for u in updates] == [{"eco_packaging": False}]
    untouched = await client.patch(url, json={"prep_time_min": 20}, headers=owner.headers)
    assert untouched.json()["eco_packaging"] is False
