"""Proof of delivery: what a courier must show to complete a delivery.

Always their position within ``PROOF_RADIUS_M`` of the drop-off; on top of that,
per merchant category (``delivery_proof_rules``, copied onto the delivery when
it opens): the customer's handover code, a photo of the handed-over goods, or
the customer's signature. Photos and signature images are objects the courier
uploaded (``POST /v1/uploads/media``, which accepts sniffed images only); a
key that does not exist, belongs to someone else or is not media is a 422. A
signature may instead be the pen strokes drawn on the courier's screen.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from api.domains.delivery.schemas import Proof
from api.domains.identity.digests import digests_match, keyed_digest
from api.errors import Conflict, InvalidInput
from api.security.principal import Principal
from api.storage.service import require_owned
from nearx.db import Connection
from nearx.geo import haversine_m
from nearx.settings import Settings

PROOF_RADIUS_M = 150.0
"""How far from the drop-off a courier may be when proving delivery (GPS error plus building size)."""
MAX_PROOF_FAILURES = 5
"""Wrong handover codes before the delivery needs support: four digits must not be guessable."""


def handover_code(delivery_id: uuid.UUID, settings: Settings) -> str:
    """The 4-digit code derived from the delivery id under the pepper (nothing secret is stored)."""
    digest = keyed_digest(settings.pepper, "delivery.handover", str(delivery_id))
    return f"{int(digest[:12], 16) % 10_000:04d}"


async def check(
    conn: Connection, principal: Principal, delivery: dict[str, Any], proof: Proof | None, settings: Settings
) -> dict[str, Any] | None:
    """The proof to store, or ``None`` for a wrong code; a missing or misplaced proof is a 422."""
    if proof is None:
        raise InvalidInput(
            "delivered needs a proof (your position, and what the merchant's category requires)"
        )
    if delivery["proof_failures"] >= MAX_PROOF_FAILURES:
        raise Conflict("too many wrong handover codes: contact support to complete this delivery")
    away = haversine_m(proof.lat, proof.lng, delivery["dropoff_lat"], delivery["dropoff_lng"])
    if away > PROOF_RADIUS_M:
        raise InvalidInput(f"you are {away:.0f} m from the drop-off; hand over within {PROOF_RADIUS_M:.0f} m")
    stored: dict[str, Any] = {
        "kind": delivery["proof_required"],
        "lat": proof.lat,
        "lng": proof.lng,
        "distance_m": away,
    }
    required = delivery["proof_required"]
    if required == "code":
        if proof.code is None:
            raise InvalidInput("this delivery needs the customer's handover code")
        if not digests_match(proof.code, handover_code(delivery["id"], settings)):
            return None
    elif required == "photo":
        if proof.photo_key is None:
            raise InvalidInput("this delivery needs a photo of the handed-over goods (photo_key)")
        await require_owned(conn, principal.user_id, [proof.photo_key], "media")
        stored["photo_key"] = proof.photo_key
    elif required == "signature":
        stored |= await _signature(conn, principal, proof)
    return stored


async def _signature(conn: Connection, principal: Principal, proof: Proof) -> dict[str, Any]:
    if (proof.signature_key is None) == (proof.signature_strokes is None):
        raise InvalidInput("this delivery needs the customer's signature: signature_key or signature_strokes")
    if proof.signature_key is not None:
        await require_owned(conn, principal.user_id, [proof.signature_key], "media")
        return {"signature_key": proof.signature_key}
    return {"signature_strokes": msgspec.to_builtins(proof.signature_strokes)}
