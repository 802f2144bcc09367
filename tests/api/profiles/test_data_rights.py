"""Export (right of access) and erasure (right to be forgotten) of a user's data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.demo.records import DemoCity, DemoCourier, DemoCustomer, DemoMerchant, DemoProvider
from api.demo.service import seed_city
from api.errors import NotFound
from api.security.principal import Role
from api.storage.store import store_for
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
    assert set(export) == {
        "exported_at",
        "profile",
        "consent_history",
        "addresses",
        "identity",
        "orders",
        "bookings",
        "payment_intents",
        "wallets",
        "uploads",
        "courier",
        "merchant_applications",
    }
    assert export["orders"] == export["bookings"] == export["uploads"] == []
    assert export["courier"] is None
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
    app: Litestar, client: Client, conn: Any, settings: Settings
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

    # A token of the stored (now revoked) session is refused, by this worker's list from the
    # commit on (not only after its next poll).
    assert session_id in app.state.revocations
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


# --- a user's whole marketplace life: orders, bookings, payments, wallet, uploads, deliveries -------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
DOORSTEP = {"lat": 27.712345, "lng": 85.318765}
DEMO = DemoCity(
    city_id="kathmandu",
    merchants=(DemoMerchant("t-m-1", "Momo corner", "restaurant", 27.7154, 85.3123, 10, 30_000),),
    providers=(
        DemoProvider("t-p-1", "Pipes", ("plumber",), 27.70, 85.32, 80_000, (0, 1, 2, 3, 4, 5, 6), 8, 18),
    ),
    couriers=(DemoCourier("t-k-1", "motorbike", 27.7150, 85.3120),),
    customer=DemoCustomer("t-c-1", "+9779812345678", 27.71, 85.31, True, "medium", "t-m-1"),
)


@dataclass(frozen=True)
class Marketplace:
    customer: uuid.UUID
    courier: uuid.UUID
    owner: uuid.UUID
    headers: dict[str, str]
    courier_headers: dict[str, str]
    upload_key: str
    intent_id: str
    order_id: str
    booking_id: str


async def _marketplace(client: Client, conn: Any, settings: Settings) -> Marketplace:
    """The demo seeder's small city, then a customer who orders (delivered by the courier to the
    doorstep), books a plumber, pays, holds a wallet and uploads a document."""
    await seed_city(conn, settings, DEMO)
    rows = {
        r["source_id"]: r["platform_id"]
        for r in await (await conn.execute("SELECT source_id, platform_id FROM demo_entities")).fetchall()
    }
    customer = rows["t-c-1"]
    owner = (
        await (
            await conn.execute("SELECT owner_user_id FROM merchants WHERE id = %s", (rows["t-m-1"],))
        ).fetchone()
    )["owner_user_id"]
    courier_user = (
        await (await conn.execute("SELECT user_id FROM couriers WHERE id = %s", (rows["t-k-1"],))).fetchone()
    )["user_id"]
    headers = auth(settings, customer)
    courier_headers = auth(settings, courier_user, Role.COURIER)
    admin_headers = auth(settings, rows["admin"], Role.ADMIN, mfa=True)

    variant = (await (await conn.execute("SELECT id FROM product_variants ORDER BY sku LIMIT 1")).fetchone())[
        "id"
    ]
    body = {"items": [{"variant_id": str(variant), "quantity": 2}], "delivery": DOORSTEP}
    checkout = await client.post("/v1/orders", json=body, headers={**headers, "Idempotency-Key": "o-1"})
    assert checkout.status_code == 201, checkout.text
    order = checkout.json()
    child = order["merchant_orders"][0]["id"]
    owner_headers = auth(settings, owner, Role.MERCHANT)
    accepted = await client.post(
        f"/v1/merchant-orders/{child}/transitions", json={"to": "accepted"}, headers=owner_headers
    )
    assert accepted.status_code in (200, 201), accepted.text
    dispatched = await client.post(
        "/v1/admin/dispatch/rounds", json={"city_id": "kathmandu"}, headers=admin_headers
    )
    assert dispatched.status_code == 200, dispatched.text
    offers = (await client.get("/v1/couriers/me/offers", headers=courier_headers)).json()
    offer_id = offers["pending"][0]["id"]
    took = await client.post(f"/v1/couriers/me/offers/{offer_id}/accept", headers=courier_headers)
    assert took.status_code == 200, took.text

    service = await (await conn.execute("SELECT id, merchant_id FROM service_listings")).fetchone()
    day = (utc_now() + timedelta(days=3)).date().isoformat()
    slots = await client.get(
        f"/v1/providers/{service['merchant_id']}/slots",
        params={"date": day, "service_id": str(service["id"])},
        headers=headers,
    )
    assert slots.status_code == 200, slots.text
    held = await client.post(
        "/v1/bookings",
        json={"service_id": str(service["id"]), "starts_at": slots.json()[0]["starts_at"]},
        headers={**headers, "Idempotency-Key": "b-1"},
    )
    assert held.status_code == 201, held.text

    intent = await client.post(
        "/v1/payment-intents",
        json={"amount_minor": 10_000, "currency": "NPR", "city_id": "kathmandu"},
        headers={**headers, "Idempotency-Key": "p-1"},
    )
    assert intent.status_code == 201, intent.text
    assert (await client.get("/v1/wallet", headers=headers)).status_code == 200
    uploaded = await client.post(
        "/v1/uploads/document", content=PDF, headers={**headers, "Content-Type": "application/pdf"}
    )
    assert uploaded.status_code == 201, uploaded.text
    return Marketplace(
        customer=customer,
        courier=courier_user,
        owner=owner,
        headers=headers,
        courier_headers=courier_headers,
        upload_key=uploaded.json()["key"],
        intent_id=intent.json()["id"],
        order_id=order["id"],
        booking_id=held.json()["id"],
    )


async def test_export_includes_marketplace_activity_of_customer_courier_and_merchant(
    client: Client, conn: Any, settings: Settings
) -> None:
    world = await _marketplace(client, conn, settings)

    export = (await client.get("/v1/me/export", headers=world.headers)).json()
    (order,) = export["orders"]
    assert (order["id"], order["delivery_lat"], order["delivery_lng"]) == (
        world.order_id,
        DOORSTEP["lat"],
        DOORSTEP["lng"],
    )
    (item,) = order["merchant_orders"][0]["items"]
    assert (item["name"], item["quantity"]) == ("Chicken momo (regular)", 2)
    (booking,) = export["bookings"]
    assert booking["id"] == world.booking_id
    assert booking["history"][0]["to_status"] == "held"
    assert world.intent_id in {intent["id"] for intent in export["payment_intents"]}
    assert all("settlement" not in intent for intent in export["payment_intents"])
    assert [(w["currency"], w["available_minor"]) for w in export["wallets"]] == [("NPR", 0)]
    assert [(u["key"], u["purpose"], u["size_bytes"]) for u in export["uploads"]] == [
        (world.upload_key, "document", len(PDF))
    ]
    assert export["courier"] is None
    assert export["merchant_applications"] == []

    courier = (await client.get("/v1/me/export", headers=auth(settings, world.courier))).json()["courier"]
    assert courier["profile"]["status"] == "approved"
    assert [h["to_state"] for h in courier["history"]] == ["pending", "approved", "online"]
    assert courier["position"]["lat"] == DEMO.couriers[0].lat
    assert [(fix["lat"], fix["lng"]) for fix in courier["track"]] == [
        (DEMO.couriers[0].lat, DEMO.couriers[0].lng)
    ]
    (delivery,) = courier["deliveries"]
    assert delivery["status"] == "assigned"
    assert "dropoff_lat" not in delivery  # the customer's doorstep is the customer's data

    merchant = (await client.get("/v1/me/export", headers=auth(settings, world.owner))).json()
    (application,) = merchant["merchant_applications"]
    assert (application["name"], application["status"]) == ("Momo corner", "approved")
    assert [h["to_status"] for h in application["history"]] == ["pending", "approved"]


async def _one(conn: Any, sql: str, *args: Any) -> Any:
    return await (await conn.execute(sql, args)).fetchone()


async def test_erasure_coarsens_delivery_points_and_tracks_and_deletes_documents(
    client: Client, conn: Any, settings: Settings
) -> None:
    world = await _marketplace(client, conn, settings)
    intent_before = await _one(
        conn, "SELECT amount_minor, status FROM payment_intents WHERE id = %s", world.intent_id
    )
    totals_before = await _one(conn, "SELECT total_minor FROM orders WHERE id = %s", world.order_id)
    stored = store_for(settings)
    assert stored.get(world.upload_key) == PDF

    assert (await client.delete("/v1/me", headers=world.headers)).status_code == 204
    order = await _one(
        conn, "SELECT delivery_lat, delivery_lng, total_minor FROM orders WHERE id = %s", world.order_id
    )
    assert (order["delivery_lat"], order["delivery_lng"]) == (27.71, 85.32)
    assert order["total_minor"] == totals_before["total_minor"]
    drop = await _one(conn, "SELECT dropoff_lat, dropoff_lng FROM deliveries")
    assert (drop["dropoff_lat"], drop["dropoff_lng"]) == (27.71, 85.32)
    assert (
        await _one(conn, "SELECT amount_minor, status FROM payment_intents WHERE id = %s", world.intent_id)
        == intent_before
    )
    assert await _one(conn, "SELECT count(*) AS n FROM stored_objects") == {"n": 0}
    with pytest.raises(NotFound):
        stored.get(world.upload_key)

    # a courier on shift must go offline first; then the live position goes and the track is coarsened
    refused = await client.delete("/v1/me", headers=world.courier_headers)
    assert refused.status_code == 409
    assert await _one(conn, "SELECT count(*) AS n FROM courier_positions") == {"n": 1}
    courier = await _one(conn, "SELECT id FROM couriers WHERE user_id = %s", world.courier)
    await conn.execute(
        "UPDATE deliveries SET status = 'cancelled', courier_id = NULL WHERE courier_id = %s",
        (courier["id"],),
    )  # the order went to someone else: the courier has no open work left
    offline = await client.post(
        "/v1/couriers/me/shift", json={"shift": "offline"}, headers=world.courier_headers
    )
    assert offline.status_code == 200, offline.text
    assert (await client.delete("/v1/me", headers=world.courier_headers)).status_code == 204
    assert await _one(conn, "SELECT count(*) AS n FROM courier_positions") == {"n": 0}
    track = await _one(conn, "SELECT lat, lng FROM courier_track WHERE courier_id = %s", courier["id"])
    assert (track["lat"], track["lng"]) == (27.72, 85.31)
    profile = await _one(
        conn, "SELECT status, documents, vehicle_plate FROM couriers WHERE id = %s", courier["id"]
    )
    assert (profile["status"], profile["documents"], profile["vehicle_plate"]) == ("approved", [], None)
