"""Delivery rules: dispatch rounds wired to the database, courier offers, and the delivery state machine.

A round (on demand, or every few seconds from a scheduler) opens deliveries
for merchant orders being prepared, returns expired offers to the pool, and
runs the pure solver (:mod:`nearx.dispatch`) on pending deliveries and free
couriers; each assignment becomes an offer with a deadline. A decline or a
timeout puts the delivery back for the next round, never again to the same
courier, and counts against the delivery (and the courier's refusal tally).
The state machine is data (``delivery_transitions``, with the actor allowed to
make each move); every move is recorded and emits ``delivery.<verb>``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from api.domains.delivery import repository as repo
from api.domains.delivery.eta import city_eta, door_eta
from api.domains.delivery.live import POSITIONS_CHANNEL, CourierFix, TrackedDelivery, shown_position
from api.domains.delivery.schemas import (
    Advance,
    CustomerDelivery,
    Delivery,
    HandoverCode,
    HistoryEntry,
    MyOffers,
    Offer,
    RoundReport,
    SosIncident,
    SosInput,
    TrackedPosition,
)
from api.domains.identity.digests import digests_match, keyed_digest
from api.errors import Conflict, InvalidInput, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.dispatch import DispatchContext, DispatchCourier, DispatchOrder, optimal_round
from nearx.emissions import delivery_emission
from nearx.geo import haversine_m
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.routing import HaversineRouting, Mode
from nearx.settings import Settings

OFFER_TIMEOUT = timedelta(seconds=45)
"""How long a courier has to accept before the offer returns to dispatch."""
PROOF_RADIUS_M = 150.0
"""How far from the drop-off a courier may be when proving delivery (GPS error plus building size)."""
MAX_PROOF_FAILURES = 5
"""Wrong handover codes before the delivery needs support: four digits must not be guessable."""
STALL_AFTER = timedelta(minutes=10)
"""A courier with work who neither moves nor progresses this long loses it to the next round."""

_TRACKED = ("assigned", "at_pickup", "picked_up")
"""Statuses in which a courier holds the delivery and its customer follows them."""

_VERBS = {
    "pending": "requested",
    "offered": "offered",
    "assigned": "assigned",
    "at_pickup": "arrived_at_pickup",
    "picked_up": "picked_up",
    "delivered": "delivered",
    "cancelled": "cancelled",
}


async def run_round(conn: Connection, city_id: str, *, now: datetime | None = None) -> RoundReport:
    """One dispatch round for a city, in one transaction (rows other rounds hold are skipped)."""
    now = now or utc_now()
    round_id = new_id()
    async with conn.transaction():
        city = await repo.city(conn, city_id)
        if city is None:
            raise InvalidInput(f"unknown city {city_id!r}")
        opened = 0
        for row in await repo.orders_needing_delivery(conn, city_id, now):
            created = await repo.insert_delivery(conn, {**row, "id": new_id()})
            await _record(conn, created, None, "pending", "system", None, None, now)
            opened += 1
        expired = await _expire_offers(conn, city_id, now)
        for delivery in await repo.stalled(conn, city_id, now - STALL_AFTER):
            await _release(conn, delivery, "courier stalled", now)
        pending = await repo.pending_deliveries(conn, city_id)
        couriers = await repo.free_couriers(conn, city_id)
        refused = await repo.refused_pairs(conn, [row["id"] for row in pending])
        context = DispatchContext(
            depart_at=now,
            eta=city_eta(city),
            country=str(city["country"]).strip(),
            excluded=frozenset((str(r["delivery_id"]), str(r["courier_id"])) for r in refused),
        )
        plan = optimal_round(
            [
                DispatchOrder(
                    id=str(row["id"]),
                    pickup=(row["pickup_lat"], row["pickup_lng"]),
                    dropoff=(row["dropoff_lat"], row["dropoff_lng"]),
                    ready_in_s=max(0.0, (row["ready_at"] - now).total_seconds()),
                    emergency=row["emergency"],
                    size=row["size"],
                )
                for row in pending
            ],
            [
                DispatchCourier(
                    id=str(row["id"]),
                    position=(row["lat"], row["lng"]),
                    mode=Mode(row["mode"]),
                    capacity=row["bag_slots"],
                    idle_s=max(0.0, (now - row["idle_since"]).total_seconds()) if row["idle_since"] else 0.0,
                )
                for row in couriers
            ],
            context,
        )
        by_id = {str(row["id"]): row for row in pending}
        offered = 0
        for assignment in plan.assignments:
            bundle_id = new_id() if len(assignment.order_ids) > 1 else None
            for order_id, eta_s in zip(assignment.order_ids, assignment.dropoff_eta_s, strict=True):
                delivery = by_id[order_id]
                offer = {
                    "id": new_id(),
                    "delivery_id": delivery["id"],
                    "courier_id": uuid.UUID(assignment.courier_id),
                    "city_id": city_id,
                    "round_id": round_id,
                    "bundle_id": bundle_id,
                    "cost_s": assignment.cost_s,
                    "dropoff_eta_s": eta_s,
                    "offered_at": now,
                    "expires_at": now + OFFER_TIMEOUT,
                    "status": "pending",
                }
                await repo.insert_offer(conn, offer)
                await _move(conn, delivery, "offered", "system", None, None, now, {}, offer=offer)
                offered += 1
    return RoundReport(
        round_id=round_id,
        opened=opened,
        expired=expired,
        offered=offered,
        waiting=len(plan.unassigned),
        total_cost_s=plan.total_cost_s,
    )


async def my_offers(conn: Connection, principal: Principal) -> MyOffers:
    courier = await _courier(conn, principal)
    pending = await repo.offers_of(conn, courier["id"], "pending")
    return MyOffers(
        pending=[msgspec.convert(row, Offer) for row in pending],
        refused_last_24h=await repo.refusals_since(conn, courier["id"], utc_now() - timedelta(days=1)),
    )


async def courier_id_of(conn: Connection, principal: Principal) -> uuid.UUID:
    courier_id: uuid.UUID = (await _courier(conn, principal))["id"]
    return courier_id


async def respond(
    conn: Connection, principal: Principal, offer_id: uuid.UUID, *, accept: bool, reason: str | None
) -> Delivery:
    """Accept (the delivery is yours) or decline (it goes back to dispatch, never to you again)."""
    now = utc_now()
    async with conn.transaction():
        courier = await _courier(conn, principal)
        offer = await repo.offer(conn, offer_id, lock=True)
        if offer is None or offer["courier_id"] != courier["id"]:
            raise NotFound("no such offer")
        if offer["status"] != "pending":
            raise Conflict(f"this offer is already {offer['status']}")
        delivery = await repo.delivery(conn, offer["delivery_id"], lock=True)
        assert delivery is not None
        if offer["expires_at"] <= now:
            await _refuse(conn, offer, delivery, "expired", "timed out", now)
            raise Conflict("this offer has expired")
        if accept:
            position = await repo.courier_position(conn, courier["id"])
            await repo.close_offer(conn, offer_id, "accepted", reason, now)
            changes = {"courier_id": courier["id"]}
            if position:
                changes |= {"assigned_from_lat": position["lat"], "assigned_from_lng": position["lng"]}
            updated = await _move(
                conn,
                delivery,
                "assigned",
                "courier",
                principal.user_id,
                reason,
                now,
                changes,
                offer={**offer, "status": "accepted"},
            )
            updated = await _refresh_eta(conn, updated, Mode(courier["mode"]), position, now, "assigned")
            return _out(updated)
        updated = await _refuse(conn, offer, delivery, "declined", reason, now, actor_id=principal.user_id)
    return _out(updated)


async def advance(
    conn: Connection, principal: Principal, delivery_id: uuid.UUID, body: Advance, settings: Settings
) -> Delivery:
    """The courier's progress; only the assigned courier may move it, one allowed step at a time.

    ``delivered`` needs a proof: the courier's position near the drop-off and, for
    some merchant categories, the customer's handover code. A wrong code is
    counted (and only that is written); after a few the courier must call support.
    """
    now = utc_now()
    wrong_code = False
    async with conn.transaction():
        courier = await _courier(conn, principal)
        delivery = await repo.delivery(conn, delivery_id, lock=True)
        if delivery is None or delivery["courier_id"] != courier["id"]:
            raise NotFound("no such delivery among yours")
        if delivery["frozen_by"] is not None:
            raise Conflict("this delivery is frozen by an open SOS; support will resolve it")
        if not await repo.allowed(conn, delivery["status"], body.to, "courier"):
            raise Conflict(f"a delivery cannot go from {delivery['status']} to {body.to}")
        changes: dict[str, Any] = {}
        if body.to == "delivered":
            proof = _check_proof(delivery, body, settings)
            if proof is None:
                await repo.add_proof_failure(conn, delivery_id)
                wrong_code = True
            else:
                changes = await _emissions(conn, delivery, Mode(courier["mode"])) | {"proof": Jsonb(proof)}
        if not wrong_code:
            updated = await _move(conn, delivery, body.to, "courier", principal.user_id, None, now, changes)
            if body.to == "delivered":
                await repo.restart_idle_clock(conn, courier["id"], now)
            if body.to == "picked_up":
                position = await repo.courier_position(conn, courier["id"])
                updated = await _refresh_eta(conn, updated, Mode(courier["mode"]), position, now, "picked_up")
    if wrong_code:
        raise InvalidInput("the handover code is not right")
    return _out(updated)


async def handover_code(
    conn: Connection, principal: Principal, delivery_id: uuid.UUID, settings: Settings
) -> HandoverCode:
    """The code the customer shows the courier; only the order's customer sees it, only while under way."""
    delivery = await repo.delivery(conn, delivery_id)
    if delivery is None or await repo.customer_of(conn, delivery_id) != principal.user_id:
        raise NotFound("no such delivery among your orders")
    if delivery["proof_required"] != "code" or delivery["status"] not in (
        "assigned",
        "at_pickup",
        "picked_up",
    ):
        raise Conflict("this delivery has no handover code to show now")
    return HandoverCode(code=_code_for(delivery_id, settings))


def _code_for(delivery_id: uuid.UUID, settings: Settings) -> str:
    digest = keyed_digest(settings.pepper, "delivery.handover", str(delivery_id))
    return f"{int(digest[:12], 16) % 10_000:04d}"


def _check_proof(delivery: dict[str, Any], body: Advance, settings: Settings) -> dict[str, Any] | None:
    """The proof to store, or ``None`` for a wrong code; a missing or misplaced proof is a 422."""
    if body.proof is None:
        raise InvalidInput("delivered needs a proof (your position, and the code when required)")
    if delivery["proof_failures"] >= MAX_PROOF_FAILURES:
        raise Conflict("too many wrong handover codes: contact support to complete this delivery")
    away = haversine_m(body.proof.lat, body.proof.lng, delivery["dropoff_lat"], delivery["dropoff_lng"])
    if away > PROOF_RADIUS_M:
        raise InvalidInput(f"you are {away:.0f} m from the drop-off; hand over within {PROOF_RADIUS_M:.0f} m")
    if delivery["proof_required"] == "code":
        if body.proof.code is None:
            raise InvalidInput("this delivery needs the customer's handover code")
        if not digests_match(body.proof.code, _code_for(delivery["id"], settings)):
            return None
    return {
        "kind": delivery["proof_required"],
        "lat": body.proof.lat,
        "lng": body.proof.lng,
        "distance_m": away,
    }


async def customer_view(conn: Connection, principal: Principal, delivery_id: uuid.UUID) -> CustomerDelivery:
    """The customer's view of their delivery: status, ETA, the courier's position (rounded until pickup)."""
    row = await repo.customer_delivery(conn, delivery_id)
    if row is None or row["customer_id"] != principal.user_id:
        raise NotFound("no such delivery among your orders")
    position = None
    if row["courier_lat"] is not None and row["status"] in _TRACKED:
        lat, lng, precise = shown_position(row["courier_lat"], row["courier_lng"], row["status"])
        position = TrackedPosition(lat=lat, lng=lng, precise=precise, at=row["courier_fixed_at"])
    return CustomerDelivery(
        id=row["id"],
        status=row["status"],
        emergency=row["emergency"],
        courier_mode=row["courier_mode"],
        courier_position=position,
        eta_at=row["eta_at"],
        updated_at=row["updated_at"],
    )


async def courier_moved(
    conn: Connection, courier_id: uuid.UUID, lat: float, lng: float, at: datetime
) -> None:
    """A courier's latest position moved: tell the live feeds of the deliveries they hold.

    Runs in the ingestion transaction; the NOTIFY goes out only if it commits.
    """
    held = await repo.tracked_deliveries(conn, courier_id)
    if not held:
        return
    fix = CourierFix(
        lat=lat,
        lng=lng,
        at=at,
        deliveries=[TrackedDelivery(id=row["id"], status=row["status"]) for row in held],
    )
    await repo.notify_position(conn, POSITIONS_CHANNEL, fix.encode())


async def get_for_courier(conn: Connection, principal: Principal, delivery_id: uuid.UUID) -> Delivery:
    courier = await _courier(conn, principal)
    delivery = await repo.delivery(conn, delivery_id)
    if delivery is None or delivery["courier_id"] != courier["id"]:
        raise NotFound("no such delivery among yours")
    return _out(delivery)


async def history_for_admin(conn: Connection, delivery_id: uuid.UUID) -> list[HistoryEntry]:
    if await repo.delivery(conn, delivery_id) is None:
        raise NotFound("no such delivery")
    return [msgspec.convert(row, HistoryEntry) for row in await repo.history(conn, delivery_id)]


async def _emissions(conn: Connection, delivery: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """Legs (courier's position at acceptance -> pickup -> drop-off) over the city's road circuity."""
    city = await repo.city(conn, delivery["city_id"])
    assert city is not None
    routing = HaversineRouting(delivery["city_id"], city["timezone"])
    pickup = (delivery["pickup_lat"], delivery["pickup_lng"])
    legs = [
        routing.leg(pickup, (delivery["dropoff_lat"], delivery["dropoff_lng"]), mode, utc_now()).distance_m
    ]
    if delivery["assigned_from_lat"] is not None:
        start = (delivery["assigned_from_lat"], delivery["assigned_from_lng"])
        legs.insert(0, routing.leg(start, pickup, mode, utc_now()).distance_m)
    emission = delivery_emission(legs, mode, str(city["country"]).strip())
    return {
        "mode": mode.value,
        "distance_m": emission.distance_m,
        "kg_co2e": emission.kg_co2e,
        "baseline_kg_co2e": emission.baseline_kg_co2e,
    }


async def release_courier(
    conn: Connection, courier_id: uuid.UUID, reason: str, actor_id: uuid.UUID | None, now: datetime
) -> int:
    """Rerouting: withdraw a courier's offers and return their not-yet-picked-up work to dispatch.

    Refuses (409) while the courier carries picked-up goods: those must be
    delivered (or handed over by support), not silently re-dispatched. Runs in
    the caller's transaction (the shift change that triggered it).
    """
    if await repo.work_of(conn, courier_id, ("picked_up",)):
        raise Conflict("deliver the order you picked up before going offline")
    returned = 0
    for offer in await repo.offers_of(conn, courier_id, "pending"):
        delivery = await repo.delivery(conn, offer["delivery_id"], lock=True)
        assert delivery is not None
        await repo.close_offer(conn, offer["id"], "withdrawn", reason, now)
        withdrawn = {**offer, "status": "withdrawn"}
        await _move(conn, delivery, "pending", "system", actor_id, reason, now, {}, offer=withdrawn)
        returned += 1
    for delivery in await repo.work_of(conn, courier_id, ("assigned", "at_pickup")):
        await _release(conn, delivery, reason, now, actor_id=actor_id)
        returned += 1
    return returned


async def _release(
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
    changes = {"courier_id": None, "assigned_from_lat": None, "assigned_from_lng": None}
    released = await _move(conn, delivery, "pending", "system", actor_id, reason, now, changes, offer=offer)
    await _set_eta(conn, released, None, "returned to dispatch", now)


async def raise_sos(conn: Connection, principal: Principal, body: SosInput) -> SosIncident:
    """A courier's SOS: recorded with position, the courier's deliveries frozen, support alerted first."""
    now = utc_now()
    async with conn.transaction():
        courier = await _courier(conn, principal)
        incident_id = new_id()
        await repo.insert_sos(
            conn,
            {
                "id": incident_id,
                "city_id": courier["city_id"],
                "raised_by": principal.user_id,
                "courier_id": courier["id"],
                "lat": body.lat,
                "lng": body.lng,
                "note": body.note,
                "raised_at": now,
            },
        )
        frozen = await repo.freeze(conn, courier["id"], incident_id)
        await append_event(
            conn,
            event_type="sos.raised",
            aggregate_type="sos",
            aggregate_id=incident_id,
            payload={
                "priority": "critical",
                "courier_id": str(courier["id"]),
                "lat": body.lat,
                "lng": body.lng,
                "deliveries": [str(delivery_id) for delivery_id in frozen],
            },
            city_id=courier["city_id"],
        )
        incident = await repo.sos(conn, incident_id)
    return msgspec.convert(incident, SosIncident)


async def open_incidents(conn: Connection) -> list[SosIncident]:
    return [msgspec.convert(row, SosIncident) for row in await repo.open_sos(conn)]


async def resolve_sos(
    conn: Connection, admin: Principal, incident_id: uuid.UUID, resolution: str
) -> SosIncident:
    async with conn.transaction():
        incident = await repo.sos(conn, incident_id, lock=True)
        if incident is None:
            raise NotFound("no such SOS incident")
        if incident["status"] != "open":
            raise Conflict("this SOS is already resolved")
        resolved = await repo.resolve_sos(conn, incident_id, admin.user_id, resolution, utc_now())
        await append_event(
            conn,
            event_type="sos.resolved",
            aggregate_type="sos",
            aggregate_id=incident_id,
            payload={"resolution": resolution, "by": str(admin.user_id)},
            city_id=incident["city_id"],
        )
    return msgspec.convert(resolved, SosIncident)


async def _expire_offers(conn: Connection, city_id: str, now: datetime) -> int:
    expired = await repo.expired_offers(conn, city_id, now)
    for offer in expired:
        delivery = await repo.delivery(conn, offer["delivery_id"], lock=True)
        assert delivery is not None
        await _refuse(conn, offer, delivery, "expired", "timed out", now)
    return len(expired)


async def _refuse(
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
    return await _move(
        conn, delivery, "pending", "system", actor_id, f"offer {status}", now, {}, offer=closed
    )


async def _move(
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
    await _record(conn, updated, delivery["status"], to_status, actor, actor_id, reason, now, offer=offer)
    return updated


async def _record(
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


async def _courier(conn: Connection, principal: Principal) -> dict[str, Any]:
    courier = await repo.courier_of_user(conn, principal.user_id)
    if courier is None:
        raise NotFound("you have no courier profile")
    return courier


def _out(row: dict[str, Any]) -> Delivery:
    return msgspec.convert(row, Delivery)


async def _refresh_eta(
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
    return await _set_eta(conn, delivery, door_eta(city_eta(city), delivery, mode, start, now), reason, now)


async def _set_eta(
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
