"""Proof of delivery by photo and by signature, as the merchant category's rule requires."""

from __future__ import annotations

from typing import Any

from api.security.principal import Role
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import HOME, Client, at_position, merchant_order, offers, round_now

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"0" * 64
AT_DOOR = {"lat": HOME[0] + 0.0005, "lng": HOME[1]}


async def _picked_up(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any, category: str
) -> tuple[Actor, str]:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user, category=category)
    await round_now(client, admin)
    offer = (await offers(client, courier))["pending"][0]
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=courier.headers)
    assert (
        accepted.json()["proof_required"] == {"furniture": "photo", "legal_documents": "signature"}[category]
    )
    delivery_id = str(accepted.json()["id"])
    for step in ("at_pickup", "picked_up"):
        moved = await client.post(
            f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": step}, headers=courier.headers
        )
        assert moved.status_code == 200, moved.text
    return courier, delivery_id


async def _upload(client: Client, actor: Actor, purpose: str, data: bytes, content_type: str) -> str:
    uploaded = await client.post(
        f"/v1/uploads/{purpose}", content=data, headers={**actor.headers, "Content-Type": content_type}
    )
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["key"])


async def _deliver(client: Client, courier: Actor, delivery_id: str, **proof: Any) -> Any:
    return await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/status",
        json={"to": "delivered", "proof": {**AT_DOOR, **proof}},
        headers=courier.headers,
    )


async def test_photo_proof_must_be_an_image_the_courier_uploaded(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, delivery_id = await _picked_up(client, make_courier, make_user, admin, conn, "furniture")
    someone = await make_user(Role.CUSTOMER)
    theirs = await _upload(client, someone, "media", PNG, "image/png")
    document = await _upload(client, courier, "document", PDF, "application/pdf")

    assert (await _deliver(client, courier, delivery_id)).status_code == 422  # no photo
    for key in (theirs, document, "media-does-not-exist.png"):
        refused = await _deliver(client, courier, delivery_id, photo_key=key)
        assert refused.status_code == 422, (key, refused.text)
    assert (await _delivery(conn, delivery_id))["status"] == "picked_up"  # nothing written

    mine = await _upload(client, courier, "media", PNG, "image/png")
    done = await _deliver(client, courier, delivery_id, photo_key=mine)
    assert done.status_code == 200, done.text
    stored = (await _delivery(conn, delivery_id))["proof"]
    assert (stored["kind"], stored["photo_key"]) == ("photo", mine)


async def test_signature_proof_as_strokes_or_an_uploaded_image(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, delivery_id = await _picked_up(client, make_courier, make_user, admin, conn, "legal_documents")
    strokes = [[[0.1, 0.5], [0.4, 0.2], [0.9, 0.6]], [[0.2, 0.8], [0.7, 0.8]]]
    image = await _upload(client, courier, "media", PNG, "image/png")

    assert (await _deliver(client, courier, delivery_id)).status_code == 422
    both = await _deliver(client, courier, delivery_id, signature_key=image, signature_strokes=strokes)
    assert both.status_code == 422
    off_pad = await _deliver(client, courier, delivery_id, signature_strokes=[[[0.1, 1.5], [0.2, 0.2]]])
    assert off_pad.status_code == 400
    a_dot = await _deliver(client, courier, delivery_id, signature_strokes=[[[0.1, 0.1]]])
    assert a_dot.status_code == 400  # a stroke needs two points
    done = await _deliver(client, courier, delivery_id, signature_strokes=strokes)
    assert done.status_code == 200, done.text
    stored = (await _delivery(conn, delivery_id))["proof"]
    assert (stored["kind"], stored["signature_strokes"]) == ("signature", strokes)

    off = await client.post("/v1/couriers/me/shift", json={"shift": "offline"}, headers=courier.headers)
    assert off.status_code == 200, off.text  # the next order goes to the next courier
    second, other_id = await _picked_up(client, make_courier, make_user, admin, conn, "legal_documents")
    signed = await _upload(client, second, "media", PNG, "image/png")
    assert (await _deliver(client, second, other_id, signature_key=image)).status_code == 422  # not theirs
    done = await _deliver(client, second, other_id, signature_key=signed)
    assert done.status_code == 200, done.text
    assert (await _delivery(conn, other_id))["proof"]["signature_key"] == signed


async def _delivery(conn: Any, delivery_id: str) -> Any:
    return await (
        await conn.execute("SELECT status, proof FROM deliveries WHERE id = %s", (delivery_id,))
    ).fetchone()
