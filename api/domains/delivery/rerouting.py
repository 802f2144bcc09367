"""Rerouting: work going back to dispatch when its courier cannot finish it, and the position
feed that watches couriers on the way.

A courier going offline (or suspended), reporting a problem, or drifting away
from the pickup returns their not-yet-picked-up work (the history stays, and
that courier is not offered it again). Picked-up goods are never silently
re-dispatched: a problem, a deviation or a courier gone silent after pickup
opens a problem for support (``delivery.problem_reported``, priority high)
and, for a deviation, refreshes the customer's ETA from where the courier is.

Route deviation: for each fix, the distance to the current target (pickup,
then drop-off) is compared with the closest approach so far; ``DEVIATION_FIXES``
fixes in a row more than ``DEVIATION_M`` beyond it count as moving away
(GPS jitter and a detour around a block stay under that).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from api.domains.delivery import repository as repo
from api.domains.delivery import transitions
from api.domains.delivery.live import POSITIONS_CHANNEL, CourierFix, TrackedDelivery
from api.domains.delivery.schemas import Problem, ProblemReport
from api.errors import Conflict, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.geo import haversine_m
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.routing import Mode

DEVIATION_M = 800.0
"""How much farther than their closest approach a courier may be from the target before a fix counts."""
DEVIATION_FIXES = 4
"""Consecutive counting fixes that flag a deviation."""
SILENT_AFTER = timedelta(minutes=10)
"""A courier holding picked-up goods with no position and no move this long is flagged to support."""


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
        await transitions.move(
            conn, delivery, "pending", "system", actor_id, reason, now, {}, offer=withdrawn
        )
        returned += 1
    for delivery in await repo.work_of(conn, courier_id, ("assigned", "at_pickup")):
        await transitions.release(conn, delivery, reason, now, actor_id=actor_id)
        returned += 1
    return returned


Fix = tuple[float, float]


def deviation_step(best_m: float | None, fixes: int, distance_m: float) -> tuple[float, int]:
    """The next ``(closest approach, counting fixes)`` after one fix ``distance_m`` from the target."""
    if best_m is None or distance_m < best_m:
        return distance_m, 0
    if distance_m > best_m + DEVIATION_M:
        return best_m, fixes + 1
    return best_m, 0


async def courier_moved(
    conn: Connection, courier: dict[str, Any], fixes: Sequence[Fix], at: datetime, now: datetime
) -> None:
    """New plausible fixes (oldest first; the last is the courier's position now).

    Watches each delivery the courier holds for a route deviation, then tells the
    live feeds where the courier is. Runs in the ingestion transaction; the
    NOTIFY goes out only if it commits.
    """
    held = await repo.tracked_deliveries(conn, courier["id"])
    shown = []
    for delivery in held:
        if delivery["frozen_by"] is None and await _deviated(conn, delivery, courier, fixes, now):
            continue  # rerouted: this courier no longer holds it
        shown.append(TrackedDelivery(id=delivery["id"], status=delivery["status"]))
    if shown:
        lat, lng = fixes[-1]
        fix = CourierFix(lat=lat, lng=lng, at=at, deliveries=shown)
        await repo.notify_position(conn, POSITIONS_CHANNEL, fix.encode())


async def _deviated(
    conn: Connection, delivery: dict[str, Any], courier: dict[str, Any], fixes: Sequence[Fix], now: datetime
) -> bool:
    """Track the approach to the target; on a deviation reroute (before pickup) or alert support
    and refresh the ETA (after). ``True`` when the delivery left the courier."""
    before_pickup = delivery["status"] != "picked_up"
    target = (
        (delivery["pickup_lat"], delivery["pickup_lng"])
        if before_pickup
        else (delivery["dropoff_lat"], delivery["dropoff_lng"])
    )
    best, counting = delivery["target_best_m"], delivery["deviation_fixes"]
    for lat, lng in fixes:
        best, counting = deviation_step(best, counting, haversine_m(lat, lng, *target))
        if counting >= DEVIATION_FIXES:
            break
    if counting < DEVIATION_FIXES:
        await repo.set_deviation(conn, delivery["id"], best, counting)
        return False
    note = f"moving away from the {'pickup' if before_pickup else 'drop-off'} ({best:.0f} m at closest)"
    await _open_problem(conn, delivery, "route_deviation", "system", note, rerouted=before_pickup, now=now)
    if before_pickup:
        await transitions.release(conn, delivery, "route deviation", now)
        return True
    lat, lng = fixes[-1]
    await repo.set_deviation(conn, delivery["id"], haversine_m(lat, lng, *target), 0)
    position = {"lat": lat, "lng": lng}
    await transitions.refresh_eta(conn, delivery, Mode(courier["mode"]), position, now, "route deviation")
    return False


async def report_problem(
    conn: Connection, principal: Principal, delivery_id: uuid.UUID, body: ProblemReport
) -> Problem:
    """The courier cannot go on: before pickup the delivery returns to dispatch (never to them
    again); after pickup support takes over the goods, the delivery stays where it is."""
    now = utc_now()
    async with conn.transaction():
        courier = await transitions.courier_of(conn, principal)
        delivery = await repo.delivery(conn, delivery_id, lock=True)
        if delivery is None or delivery["courier_id"] != courier["id"]:
            raise NotFound("no such delivery among yours")
        if delivery["status"] not in ("assigned", "at_pickup", "picked_up"):
            raise Conflict(f"a {delivery['status']} delivery has no problem to report")
        if delivery["frozen_by"] is not None:
            raise Conflict("this delivery is frozen by an open SOS; support will resolve it")
        rerouted = delivery["status"] != "picked_up"
        problem = await _open_problem(
            conn, delivery, body.kind, "courier", body.note, rerouted=rerouted, now=now
        )
        if rerouted:
            reason = f"courier reported {body.kind}"
            await transitions.release(conn, delivery, reason, now, actor_id=principal.user_id)
    return problem


async def alert_silent_couriers(conn: Connection, city_id: str, now: datetime) -> int:
    """Flag couriers gone silent with picked-up goods to support (an alert, not a reassignment)."""
    silent = await repo.silent_with_goods(conn, city_id, now - SILENT_AFTER)
    for delivery in silent:
        note = f"no position or progress for {SILENT_AFTER.total_seconds() / 60:.0f} min after pickup"
        await _open_problem(conn, delivery, "courier_silent", "system", note, rerouted=False, now=now)
    return len(silent)


async def open_problems(conn: Connection) -> list[Problem]:
    return [msgspec.convert(row, Problem) for row in await repo.open_problems(conn)]


async def resolve_problem(
    conn: Connection, admin: Principal, problem_id: uuid.UUID, resolution: str
) -> Problem:
    """Support closes a problem (the goods were handed over, the courier answered...)."""
    async with conn.transaction():
        row = await repo.resolve_problem(conn, problem_id, utc_now())
        if row is None:
            raise NotFound("no open delivery problem with that id")
        await append_event(
            conn,
            event_type="delivery.problem_resolved",
            aggregate_type="delivery",
            aggregate_id=row["delivery_id"],
            payload={"problem_id": str(problem_id), "resolution": resolution, "by": str(admin.user_id)},
            city_id=row["city_id"],
        )
    return msgspec.convert(row, Problem)


async def _open_problem(
    conn: Connection,
    delivery: dict[str, Any],
    kind: str,
    reported_by: str,
    note: str | None,
    *,
    rerouted: bool,
    now: datetime,
) -> Problem:
    row = await repo.insert_problem(
        conn,
        {
            "id": new_id(),
            "delivery_id": delivery["id"],
            "city_id": delivery["city_id"],
            "courier_id": delivery["courier_id"],
            "kind": kind,
            "reported_by": reported_by,
            "status_at": delivery["status"],
            "note": note,
            "rerouted": rerouted,
            "reported_at": now,
        },
    )
    problem = msgspec.convert(row, Problem)
    await append_event(
        conn,
        event_type="delivery.problem_reported",
        aggregate_type="delivery",
        aggregate_id=delivery["id"],
        payload={"priority": "high", "to": delivery["status"], **msgspec.to_builtins(problem)},
        city_id=delivery["city_id"],
    )
    return problem
