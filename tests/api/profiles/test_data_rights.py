"""Export (right of access) and erasure (right to be forgotten) of a user's data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

THAMEL = {"label": "Home", "line": "Thamel Marg 12, Kathmandu", "lat": 27.715432, "lng": 85.312345}
KOREGAON_PARK = {"label": "Work", "line": "North Main Road, Koregaon Park", "lat": 18.5362, "lng": 73.8940}


async def _populated_user(client: Client, conn: Any, settings: Settings) -> tuple[Any, dict[str, str]]:
    user_id = await insert_user(conn, phone="+9779812345678", email="asha@example.com", display_name="Asha")
    headers = auth(settings, user_id)
    patch = {
        "locale": "ne-NP",
        "preferences": {"eco_first": True, "allergens": ["sesame"], "dietary_tags": ["vegan"]},
        "consents": {"marketing": True, "analytics": True},
    }
    assert (await client.patch("/v1/me", json=patch, headers=headers)).status_code == 200
    assert (
        await client.patch("/v1/me", json={"consents": {"analytics": False}}, headers=headers)
    ).status_code == 200
    for body in (THAMEL, KOREGAON_PARK):
        assert (await client.post("/v1/me/addresses", json=body, headers=headers)).status_code == 201
    return user_id, headers


async def _session(conn: Any, user_id: Any) -> Any:
    session_id = new_id()
    await conn.execute(
        "INSERT INTO auth_sessions (id, user_id, method, expires_at) VALUES (%s, %s, 'otp', %s)",
        (session_id, user_id, utc_now() + timedelta(days=1)),
    )
    return session_id


async def test_export_contains_everything(client: Client, conn: Any, settings: Settings) -> None:
    user_id, headers = await _populated_user(client, conn, settings)
    session_id = await _session(conn, user_id)
    response = await client.get("/v1/me/export", headers=headers)
    assert response.status_code == 200
    export = response.json()
    assert set(export) == {"exported_at", "profile", "consent_history", "addresses", "identity"}
    profile = export["profile"]
    assert (profile["phone"], profile["email"], profile["display_name"], profile["locale"]) == (
        "+9779812345678",
        "asha@example.com",
        "Asha",
        "ne-NP",
    )
    assert profile["preferences"]["allergens"] == ["sesame"]
    assert profile["consents"]["analytics"]["granted"] is False
    history = [(event["purpose"], event["granted"]) for event in export["consent_history"]]
    assert sorted(history[:2]) == [("analytics", True), ("marketing", True)]  # one PATCH, one instant
    assert history[2:] == [("analytics", False)]
    assert [address["line"] for address in export["addresses"]] == [THAMEL["line"], KOREGAON_PARK["line"]]
    assert export["identity"]["roles"][0]["role"] == "customer"
    assert [session["id"] for session in export["identity"]["sessions"]] == [str(session_id)]


async def test_delete_erases_pii_but_keeps_the_user_and_what_references_it(
    client: Client, conn: Any, settings: Settings
) -> None:
    user_id, headers = await _populated_user(client, conn, settings)
    session_id = await _session(conn, user_id)
    # A financial record owned by another context: it must survive the erasure untouched.
    await conn.execute(
        "CREATE TABLE ledger_probe (id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users (id))"
    )
    await conn.execute("INSERT INTO ledger_probe VALUES (%s, %s)", (new_id(), user_id))

    stored_session = auth(settings, user_id, session_id=session_id)
    assert (await client.get("/v1/me", headers=stored_session)).status_code == 200

    response = await client.delete("/v1/me", headers=headers)
    assert response.status_code == 204

    user = await (
        await conn.execute(
            "SELECT phone, email, display_name, locale, status FROM users WHERE id = %s", (user_id,)
        )
    ).fetchone()
    assert user == {"phone": None, "email": None, "display_name": None, "locale": "en", "status": "deleted"}
    profile = await (
        await conn.execute(
            "SELECT eco_first, allergens, dietary_tags, deleted_at FROM profiles WHERE user_id = %s",
            (user_id,),
        )
    ).fetchone()
    assert profile["eco_first"] is False
    assert profile["allergens"] == profile["dietary_tags"] == []
    assert profile["deleted_at"] is not None
    addresses = await (
        await conn.execute(
            "SELECT label, line, lat, lng, h3_r9, erased_at FROM addresses WHERE user_id = %s", (user_id,)
        )
    ).fetchall()
    assert len(addresses) == 2
    for address in addresses:
        assert address["label"] is None
        assert address["line"] is None
        assert address["h3_r9"] is None
        assert address["erased_at"] is not None
        assert round(address["lat"], 2) == address["lat"]
    assert {(a["lat"], a["lng"]) for a in addresses} == {(27.72, 85.31), (18.54, 73.89)}
    # Consent evidence stays; what was still granted is withdrawn by the deletion.
    history = await (
        await conn.execute(
            "SELECT purpose, granted, source FROM consent_events "
            "WHERE user_id = %s AND source = 'account_deletion'",
            (user_id,),
        )
    ).fetchall()
    assert history == [{"purpose": "marketing", "granted": False, "source": "account_deletion"}]
    assert (await (await conn.execute("SELECT count(*) AS n FROM ledger_probe")).fetchone())["n"] == 1
    session = await (
        await conn.execute("SELECT revoked_at, revoke_reason FROM auth_sessions WHERE id = %s", (session_id,))
    ).fetchone()
    assert session["revoked_at"] is not None
    assert session["revoke_reason"] == "account_deleted"
    events = await (
        await conn.execute("SELECT aggregate_id, payload FROM outbox WHERE event_type = 'user.deleted'")
    ).fetchall()
    assert len(events) == 1
    assert events[0]["aggregate_id"] == user_id
    assert "phone" not in events[0]["payload"]

    # A token of the stored (now revoked) session is refused.
    assert (await client.get("/v1/me", headers=stored_session)).status_code == 401

    # Any other token of the deleted user no longer reads or writes anything either.
    for method, url in [("GET", "/v1/me"), ("GET", "/v1/me/export"), ("GET", "/v1/me/addresses")]:
        assert (await client.request(method, url, headers=headers)).status_code == 401
    assert (await client.patch("/v1/me", json={"display_name": "Back"}, headers=headers)).status_code == 401
    assert (await client.post("/v1/me/addresses", json=THAMEL, headers=headers)).status_code == 401

    # A second delete is harmless: same answer, nothing more written.
    outbox_before = (await (await conn.execute("SELECT count(*) AS n FROM outbox")).fetchone())["n"]
    again = await client.delete("/v1/me", headers=headers)
    assert again.status_code == 204
    assert (await (await conn.execute("SELECT count(*) AS n FROM outbox")).fetchone())["n"] == outbox_before


async def test_deleting_one_user_leaves_another_alone(client: Client, conn: Any, settings: Settings) -> None:
    leaving, headers = await _populated_user(client, conn, settings)
    staying = await insert_user(conn, phone="+919812345678", display_name="Ravi")
    staying_headers = auth(settings, staying)
    kept = await client.post("/v1/me/addresses", json=KOREGAON_PARK, headers=staying_headers)
    assert (await client.delete("/v1/me", headers=headers)).status_code == 204
    me = (await client.get("/v1/me", headers=staying_headers)).json()
    assert (me["display_name"], me["phone"], me["status"]) == ("Ravi", "+919812345678", "active")
    addresses = (await client.get("/v1/me/addresses", headers=staying_headers)).json()["items"]
    assert addresses == [kept.json()]
    assert leaving != staying
