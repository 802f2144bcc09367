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

from api.domains.delivery import proofs, rerouting, transitions
from api.domains.delivery import repository as repo
from api.domains.delivery.eta import city_eta, promised_trips
from api.domains.delivery.live import shown_position
from api.domains.delivery.schemas import (
    Advance,
    CustomerDelivery,
    Delivery,
    HandoverCode,
    HistoryEntry,
    MyOffers,
    Offer,
    RoundReport,
    TrackedPosition,
)
from api.errors import Conflict, InvalidInput, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.dispatch import DispatchContext, DispatchCourier, DispatchOrder, optimal_round
from nearx.emissions import delivery_emission
from nearx.ids import new_id
from nearx.routing import Mode, routing_provider
from nearx.settings import Settings

OFFER_TIMEOUT = timedelta(seconds=45)
"""How long a courier has to accept before the offer returns to dispatch."""
STALL_AFTER = timedelta(minutes=10)
"""A courier with work who neither moves nor progresses this long loses it to the next round."""

_TRACKED = ("assigned", "at_pickup", "picked_up")
"""Statuses in which a courier holds the delivery and its customer follows them."""


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
            await transitions.record(conn, created, None, "pending", "system", None, None, now)
            opened += 1
        expired = await _expire_offers(conn, city_id, now)
        for delivery in await repo.stalled(conn, city_id, now - STALL_AFTER):
            await transitions.release(conn, delivery, "courier stalled", now)
        silent = await rerouting.alert_silent_couriers(conn, city_id, now)
        pending = await repo.pending_deliveries(conn, city_id)
        couriers = await repo.free_couriers(conn, city_id)
        refused = await repo.refused_pairs(conn, [row["id"] for row in pending])
        context = DispatchContext(
            depart_at=now,
            eta=city_eta(city, await promised_trips(conn, pending)),
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
                await transitions.move(conn, delivery, "offered", "system", None, None, now, {}, offer=offer)
                offered += 1
    return RoundReport(
        round_id=round_id,
        opened=opened,
        expired=expired,
        offered=offered,
        waiting=len(plan.unassigned),
        total_cost_s=plan.total_cost_s,
        silent_alerts=silent,
    )


async def my_offers(conn: Connection, principal: Principal) -> MyOffers:
    courier = await transitions.courier_of(conn, principal)
    pending = await repo.offers_of(conn, courier["id"], "pending")
    return MyOffers(
        pending=[msgspec.convert(row, Offer) for row in pending],
        refused_last_24h=await repo.refusals_since(conn, courier["id"], utc_now() - timedelta(days=1)),
    )


async def courier_id_of(conn: Connection, principal: Principal) -> uuid.UUID:
    courier_id: uuid.UUID = (await transitions.courier_of(conn, principal))["id"]
    return courier_id


async def respond(
    conn: Connection, principal: Principal, offer_id: uuid.UUID, *, accept: bool, reason: str | None
) -> Delivery:
    """Accept (the delivery is yours) or decline (it goes back to dispatch, never to you again)."""
    now = utc_now()
    async with conn.transaction():
        courier = await transitions.courier_of(conn, principal)
        offer = await repo.offer(conn, offer_id, lock=True)
        if offer is None or offer["courier_id"] != courier["id"]:
            raise NotFound("no such offer")
        if offer["status"] != "pending":
            raise Conflict(f"this offer is already {offer['status']}")
        delivery = await repo.delivery(conn, offer["delivery_id"], lock=True)
        assert delivery is not None
        if offer["expires_at"] <= now:
            await transitions.refuse(conn, offer, delivery, "expired", "timed out", now)
            raise Conflict("this offer has expired")
        if accept:
            position = await repo.courier_position(conn, courier["id"])
            await repo.close_offer(conn, offer_id, "accepted", reason, now)
            changes = {"courier_id": courier["id"]}
            if position:
                changes |= {"assigned_from_lat": position["lat"], "assigned_from_lng": position["lng"]}
            updated = await transitions.move(
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
            updated = await transitions.refresh_eta(
                conn, updated, Mode(courier["mode"]), position, now, "assigned"
            )
            return _out(updated)
        updated = await transitions.refuse(
            conn, offer, delivery, "declined", reason, now, actor_id=principal.user_id
        )
    return _out(updated)


async def advance(
    conn: Connection, principal: Principal, delivery_id: uuid.UUID, body: Advance, settings: Settings
) -> Delivery:
    """The courier's progress; only the assigned courier may move it, one allowed step at a time.

    ``delivered`` needs a proof (:mod:`api.domains.delivery.proofs`). A wrong
    handover code is counted (and only that is written); after a few the courier
    must call support.
    """
    now = utc_now()
    wrong_code = False
    async with conn.transaction():
        courier = await transitions.courier_of(conn, principal)
        delivery = await repo.delivery(conn, delivery_id, lock=True)
        if delivery is None or delivery["courier_id"] != courier["id"]:
            raise NotFound("no such delivery among yours")
        if delivery["frozen_by"] is not None:
            raise Conflict("this delivery is frozen by an open SOS; support will resolve it")
        if not await repo.allowed(conn, delivery["status"], body.to, "courier"):
            raise Conflict(f"a delivery cannot go from {delivery['status']} to {body.to}")
        changes: dict[str, Any] = {}
        if body.to == "delivered":
            proof = await proofs.check(conn, principal, delivery, body.proof, settings)
            if proof is None:
                await repo.add_proof_failure(conn, delivery_id)
                wrong_code = True
            else:
                changes = await _emissions(conn, delivery, Mode(courier["mode"]), settings) | {
                    "proof": Jsonb(proof)
                }
        if body.to == "picked_up":  # the target is the drop-off now: deviation tracking starts afresh
            changes = {"target_best_m": None, "deviation_fixes": 0}
        if not wrong_code:
            updated = await transitions.move(
                conn, delivery, body.to, "courier", principal.user_id, None, now, changes
            )
            if body.to == "delivered":
                await repo.restart_idle_clock(conn, courier["id"], now)
            if body.to == "picked_up":
                position = await repo.courier_position(conn, courier["id"])
                updated = await transitions.refresh_eta(
                    conn, updated, Mode(courier["mode"]), position, now, "picked_up"
                )
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
    return HandoverCode(code=proofs.handover_code(delivery_id, settings))


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


async def get_for_courier(conn: Connection, principal: Principal, delivery_id: uuid.UUID) -> Delivery:
    courier = await transitions.courier_of(conn, principal)
    delivery = await repo.delivery(conn, delivery_id)
    if delivery is None or delivery["courier_id"] != courier["id"]:
        raise NotFound("no such delivery among yours")
    return _out(delivery)


async def history_for_admin(conn: Connection, delivery_id: uuid.UUID) -> list[HistoryEntry]:
    if await repo.delivery(conn, delivery_id) is None:
        raise NotFound("no such delivery")
    return [msgspec.convert(row, HistoryEntry) for row in await repo.history(conn, delivery_id)]


async def _emissions(
    conn: Connection, delivery: dict[str, Any], mode: Mode, settings: Settings
) -> dict[str, Any]:
    """Legs (courier's position at acceptance -> pickup -> drop-off) by the routing provider's distance."""
    city = await repo.city(conn, delivery["city_id"])
    assert city is not None
    routing = routing_provider(settings, delivery["city_id"], city["timezone"])
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


async def _expire_offers(conn: Connection, city_id: str, now: datetime) -> int:
    expired = await repo.expired_offers(conn, city_id, now)
    for offer in expired:
        delivery = await repo.delivery(conn, offer["delivery_id"], lock=True)
        assert delivery is not None
        await transitions.refuse(conn, offer, delivery, "expired", "timed out", now)
    return len(expired)


def _out(row: dict[str, Any]) -> Delivery:
    return msgspec.convert(row, Delivery)
