"""The delivery state machine's moves, and the customer ETA they carry.

Every move checks the transition table for the actor (409 otherwise, and
always while SOS-frozen), updates the delivery, records the history row and
emits ``delivery.<verb>`` in the caller's transaction. Dispatch, courier
progress, SOS and rerouting all move deliveries through here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from api.domains.delivery import repository as repo
from api.domains.delivery.eta import city_eta, door_eta
from api.errors import Conflict, NotFound
from api.security.principal import Principal
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.routing import Mode

_VERBS = {
    "pending": "requested",
    "offered": "offered",
    "assigned": "assigned",
    "at_pickup": "arrived_at_pickup",
    "picked_up": "picked_up",
    "delivered": "delivered",
    "cancelled": "cancelled",
}


async def move(
    conn: Connection,
    delivery: dict[str, Any],
    to_status: str,
    actor: str,
    actor_id: uuid.UUID | None,
    reason: str | None,
    now: datetime,
    changes: dict[str, Any],
    *,
    offer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Refuse a move the table doesn't allow for this actor, or any move while SOS-frozen (409).

    ``offer`` is the offer the move made or closed: its event carries it, so the
    courier's live channel learns of it.
    """
    if delivery["frozen_by"] is not None:
        raise Conflict("this delivery is frozen by an open SOS; support will resolve it")
    if not await repo.allowed(conn, delivery["status"], to_status, actor):
        raise Conflict(f"a delivery cannot go from {delivery['status']} to {to_status}")
    updated = await repo.update_delivery(conn, delivery["id"], {"status": to_status, **changes}, now)
    await record(conn, updated, delivery["status"], to_status, actor, actor_id, reason, now, offer=offer)
    return updated


async def record(
    conn: Connection,
    delivery: dict[str, Any],
    from_status: str | None,
    to_status: str,
    actor: str,
    actor_id: uuid.UUID | None,
    reason: str | None,
    now: datetime,
    *,
    offer: dict[str, Any] | None = None,
) -> None:
    await repo.record_transition(
        conn,
        {
            "id": new_id(),
            "delivery_id": delivery["id"],
            "city_id": delivery["city_id"],
            "from_status": from_status,
            "to_status": to_status,
            "actor": actor,
            "actor_id": actor_id,
            "reason": reason,
            "at": now,
        },
    )
    payload: dict[str, Any] = {
        "delivery_id": str(delivery["id"]),
        "merchant_order_id": str(delivery["merchant_order_id"]),
        "from": from_status,
        "to": to_status,
        "courier_id": str(delivery["courier_id"]) if delivery["courier_id"] else None,
    }
    if to_status == "delivered":
        payload |= {key: delivery[key] for key in ("mode", "distance_m", "kg_co2e", "baseline_kg_co2e")}
    if offer is not None:
        payload["offer"] = {
            key: offer[key] for key in ("id", "courier_id", "status", "expires_at", "dropoff_eta_s")
        }
    returned = to_status == "pending" and from_status is not None  # declined, expired or rerouted
    await append_event(
        conn,
        event_type=f"delivery.{'returned' if returned else _VERBS[to_status]}",
        aggregate_type="delivery",
        aggregate_id=delivery["id"],
        payload=payload,
        city_id=delivery["city_id"],
    )


async def refuse(
    conn: Connection,
    offer: dict[str, Any],
    delivery: dict[str, Any],
    status: str,
    reason: str | None,
    now: datetime,
    *,
    actor_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    await repo.close_offer(conn, offer["id"], status, reason, now)
    await repo.add_decline(conn, delivery["id"])
    delivery = {**delivery, "declines": delivery["declines"] + 1}
    closed = {**offer, "status": status}
    return await move(conn, delivery, "pending", "system", actor_id, f"offer {status}", now, {}, offer=closed)


async def release(
    conn: Connection,
    delivery: dict[str, Any],
    reason: str,
    now: datetime,
    *,
    actor_id: uuid.UUID | None = None,
) -> None:
    """Take an assigned delivery back (its history stays); that courier is not offered it again."""
    offer = await repo.accepted_offer(conn, delivery["id"], delivery["courier_id"])
    if offer is not None:
        await repo.close_offer(conn, offer["id"], "withdrawn", reason, now)
        offer = {**offer, "status": "withdrawn"}
    changes = {
        "courier_id": None,
        "assigned_from_lat": None,
        "assigned_from_lng": None,
        "target_best_m": None,
        "deviation_fixes": 0,
    }
    released = await move(conn, delivery, "pending", "system", actor_id, reason, now, changes, offer=offer)
    await set_eta(conn, released, None, "returned to dispatch", now)


async def refresh_eta(
    conn: Connection,
    delivery: dict[str, Any],
    mode: Mode,
    position: dict[str, Any] | None,
    now: datetime,
    reason: str,
) -> dict[str, Any]:
    """Predict the hand-over time from the courier's position and store it on the delivery."""
    city = await repo.city(conn, delivery["city_id"])
    assert city is not None
    start = (position["lat"], position["lng"]) if position else None
    return await set_eta(conn, delivery, door_eta(city_eta(city), delivery, mode, start, now), reason, now)


async def set_eta(
    conn: Connection, delivery: dict[str, Any], eta_at: datetime | None, reason: str, now: datetime
) -> dict[str, Any]:
    updated = await repo.update_delivery(conn, delivery["id"], {"eta_at": eta_at, "eta_updated_at": now}, now)
    await append_event(
        conn,
        event_type="delivery.eta_updated",
        aggregate_type="delivery",
        aggregate_id=delivery["id"],
        payload={"delivery_id": str(delivery["id"]), "eta_at": eta_at, "reason": reason},
        city_id=delivery["city_id"],
    )
    return updated


async def courier_of(conn: Connection, principal: Principal) -> dict[str, Any]:
    courier = await repo.courier_of_user(conn, principal.user_id)
    if courier is None:
        raise NotFound("you have no courier profile")
    return courier
