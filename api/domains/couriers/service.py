"""Courier rules: onboarding and approval, the shift switch, and GPS ingestion.

Both state machines are data (``courier_transitions``); every move is recorded
in ``courier_history`` with the actor and reason, and emits a ``courier.<verb>``
event in the same transaction. Approval grants the platform role ``courier``
(through identity, so it is audited), which the courier-only routes require.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from api import idempotency
from api.domains.couriers import repository as repo
from api.domains.couriers.plausibility import Anchor, RawFix, judge
from api.domains.couriers.schemas import (
    Courier,
    CourierApplication,
    Decision,
    FixVerdict,
    HistoryEntry,
    LocationBatch,
    LocationReceipt,
    Position,
    ShiftChange,
)
from api.domains.delivery import repository as delivery_repo
from api.domains.delivery import rerouting
from api.domains.identity import service as identity
from api.domains.identity.audit import RequestContext
from api.errors import Conflict, InvalidInput, NotFound
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.geo import h3_cells
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.routing import Mode, default_profile

TRACK_WINDOW_DAYS = 7
"""Fixes older than this are refused outright: the track is for recent proof, not backfills."""

_DECISION_TARGET = {
    "approve": "approved",
    "reject": "rejected",
    "suspend": "suspended",
    "reinstate": "approved",
}
_EVENT_VERB = {
    "approved": "approved",
    "rejected": "rejected",
    "suspended": "suspended",
    "online": "went_online",
    "offline": "went_offline",
    "on_break": "took_break",
}


def _out(row: dict[str, Any]) -> Courier:
    return msgspec.convert({**row, "documents": row["documents"]}, Courier, from_attributes=False)


async def apply(
    conn: Connection, principal: Principal, body: CourierApplication, *, key: str
) -> tuple[int, Any]:
    """Submit an application (pending until an admin decides); one courier profile per user."""
    scope = f"couriers.apply:{principal.user_id}"
    async with conn.transaction():
        stored = await idempotency.claim(
            conn, scope=scope, key=key, fingerprint=idempotency.request_fingerprint(body)
        )
        if stored is not None:
            return stored.status, stored.body
        if not await repo.city_exists(conn, body.city_id):
            raise InvalidInput(f"unknown city {body.city_id!r}")
        row = await repo.insert_courier(
            conn,
            {
                "id": new_id(),
                "user_id": principal.user_id,
                "city_id": body.city_id,
                "mode": body.mode.value,
                "bag_slots": body.bag_slots,
                "max_weight_g": body.max_weight_g,
                "documents": msgspec.to_builtins(body.documents),
                "vehicle_plate": body.vehicle_plate,
            },
        )
        if not row:
            raise Conflict("you already have a courier profile")
        await _transition(conn, row, "approval", None, "pending", principal.user_id, None, verb="applied")
        result = msgspec.to_builtins(_out(row))
        await idempotency.remember(conn, scope=scope, key=key, status=201, body=result)
    return 201, result


async def me(conn: Connection, principal: Principal) -> Courier:
    return _out(await _mine(conn, principal))


async def my_history(conn: Connection, principal: Principal) -> list[HistoryEntry]:
    courier = await _mine(conn, principal)
    return [msgspec.convert(row, HistoryEntry) for row in await repo.history(conn, courier["id"])]


async def list_for_admin(
    conn: Connection, status: str | None, after: uuid.UUID | None, limit: int
) -> list[Courier]:
    return [_out(row) for row in await repo.list_by_status(conn, status, after, limit)]


async def decide(
    conn: Connection, admin: Principal, courier_id: uuid.UUID, body: Decision, *, context: RequestContext
) -> Courier:
    """Move the approval workflow; approving grants the ``courier`` role, suspending forces offline."""
    target = _DECISION_TARGET[body.decision]
    async with conn.transaction():
        courier = await repo.by_id(conn, courier_id, lock=True)
        if courier is None:
            raise NotFound("no such courier")
        if body.decision == "reinstate" and courier["status"] != "suspended":
            raise Conflict(f"cannot reinstate a courier who is {courier['status']}")
        if body.decision == "approve" and courier["status"] != "pending":
            raise Conflict(f"cannot approve a courier who is {courier['status']}")
        if target == "suspended" and courier["shift"] != "offline":
            await _transition(conn, courier, "shift", courier["shift"], "offline", admin.user_id, body.reason)
            await rerouting.release_courier(conn, courier_id, "courier suspended", admin.user_id, utc_now())
            courier = await repo.set_state(conn, courier_id, "shift", "offline", utc_now())
        await _transition(conn, courier, "approval", courier["status"], target, admin.user_id, body.reason)
        updated = await repo.set_state(conn, courier_id, "status", target, utc_now())
        if target == "approved":
            await identity.grant_role(conn, admin, courier["user_id"], Role.COURIER, context=context)
    return _out(updated)


async def change_shift(conn: Connection, principal: Principal, body: ShiftChange) -> Courier:
    async with conn.transaction():
        courier = await _mine(conn, principal, lock=True)
        if courier["status"] != "approved":
            raise Conflict(f"only an approved courier can change shift (you are {courier['status']})")
        await _transition(
            conn, courier, "shift", courier["shift"], body.shift, principal.user_id, body.reason
        )
        if body.shift == "offline":  # rerouting: unfinished work goes back to dispatch
            await rerouting.release_courier(
                conn, courier["id"], "courier went offline", principal.user_id, utc_now()
            )
        return _out(await repo.set_state(conn, courier["id"], "shift", body.shift, utc_now()))


async def ingest_locations(conn: Connection, principal: Principal, body: LocationBatch) -> LocationReceipt:
    """Store every fix of the batch in the day-partitioned track; move the latest position to the
    newest plausible one. Re-sending a batch is harmless (a fix is keyed by courier and time).
    """
    now = utc_now()
    fixes = [RawFix(f.lat, f.lng, f.at, f.accuracy_m, f.speed_mps) for f in body.fixes]
    if any(f.at.tzinfo is None for f in fixes):
        raise InvalidInput("fix times need a timezone (RFC 3339 with an offset)")
    if any((now - f.at).days >= TRACK_WINDOW_DAYS for f in fixes):
        raise InvalidInput(f"fixes older than {TRACK_WINDOW_DAYS} days are not accepted")
    async with conn.transaction():
        courier = await _mine(conn, principal, lock=True)
        if courier["shift"] == "offline":
            raise Conflict("go online before sharing your location")
        last = await repo.position(conn, courier["id"])
        anchor = Anchor(last["lat"], last["lng"], last["fixed_at"]) if last else None
        max_speed = default_profile().max_plausible_mps(Mode(courier["mode"]))
        flags = judge(fixes, anchor, max_speed, now)
        stored = [
            (fix, reasons) for fix, reasons in zip(fixes, flags, strict=True) if "future" not in reasons
        ]
        await repo.ensure_track_partitions(conn, {fix.at.astimezone(now.tzinfo).date() for fix, _ in stored})
        await repo.append_track(
            conn,
            [
                {
                    "courier_id": courier["id"],
                    "fixed_at": fix.at,
                    "city_id": courier["city_id"],
                    "lat": fix.lat,
                    "lng": fix.lng,
                    "accuracy_m": fix.accuracy_m,
                    "speed_mps": fix.speed_mps,
                    "flags": reasons,
                }
                for fix, reasons in stored
            ],
        )
        used = [fix for fix, reasons in zip(fixes, flags, strict=True) if not reasons]
        if used:
            newest = max(used, key=lambda fix: fix.at)
            cells = h3_cells(newest.lat, newest.lng, (7, 9))
            await repo.upsert_position(
                conn,
                {
                    "courier_id": courier["id"],
                    "city_id": courier["city_id"],
                    "lat": newest.lat,
                    "lng": newest.lng,
                    "accuracy_m": newest.accuracy_m,
                    "speed_mps": newest.speed_mps,
                    "fixed_at": newest.at,
                    "h3_r7": cells[7],
                    "h3_r9": cells[9],
                },
            )
        position = await repo.position(conn, courier["id"])
        if used and position and position["fixed_at"] == newest.at:  # it moved (not a late batch)
            path = [(fix.lat, fix.lng) for fix in sorted(used, key=lambda fix: fix.at)]
            await rerouting.courier_moved(conn, courier, path, newest.at, now)
    return LocationReceipt(
        used=len(used),
        flagged=len(fixes) - len(used),
        verdicts=[FixVerdict(index=i, used=not reasons, flags=reasons) for i, reasons in enumerate(flags)],
        position=msgspec.convert(position, Position) if position else None,
    )


async def _mine(conn: Connection, principal: Principal, *, lock: bool = False) -> dict[str, Any]:
    courier = await repo.by_user(conn, principal.user_id, lock=lock)
    if courier is None:
        raise NotFound("you have no courier profile")
    return courier


async def _transition(
    conn: Connection,
    courier: dict[str, Any],
    machine: str,
    from_state: str | None,
    to_state: str,
    actor_id: uuid.UUID,
    reason: str | None,
    *,
    verb: str | None = None,
) -> None:
    """Refuse a move the table doesn't allow (409); record it and emit its event."""
    if from_state is not None and not await repo.allowed(conn, machine, from_state, to_state):
        raise Conflict(f"a courier cannot go from {from_state} to {to_state}")
    now = utc_now()
    await repo.record_transition(
        conn,
        {
            "id": new_id(),
            "courier_id": courier["id"],
            "city_id": courier["city_id"],
            "machine": machine,
            "from_state": from_state,
            "to_state": to_state,
            "actor_id": actor_id,
            "reason": reason,
            "at": now,
        },
    )
    await append_event(
        conn,
        event_type=f"courier.{verb or _EVENT_VERB[to_state]}",
        aggregate_type="courier",
        aggregate_id=courier["id"],
        payload={"courier_id": str(courier["id"]), "machine": machine, "from": from_state, "to": to_state},
        city_id=courier["city_id"],
    )


# --- data rights (called by the profiles context) --------------------------------------------


async def export_courier(conn: Connection, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The user's courier profile, its history, live position, GPS track and deliveries (JSON-ready),
    or ``None`` for a user who never applied."""
    courier = await repo.by_user(conn, user_id)
    if courier is None:
        return None
    export: dict[str, Any] = msgspec.to_builtins(
        {
            "profile": _out(courier),
            "history": await repo.history(conn, courier["id"]),
            "position": await repo.position(conn, courier["id"]),
            "track": await repo.track_of(conn, courier["id"]),
            "deliveries": await delivery_repo.deliveries_of_courier(conn, courier["id"]),
        }
    )
    return export


async def erase_courier(conn: Connection, user_id: uuid.UUID) -> None:
    """Account deletion, inside its transaction: forget the live position, coarsen the track and
    the acceptance points, drop documents and plate. The profile row, its history and the
    deliveries stay: payouts and the books reference them. A courier still on shift must go
    offline first (409), which hands their unfinished work back to dispatch."""
    courier = await repo.by_user(conn, user_id, lock=True)
    if courier is None:
        return
    if courier["shift"] != "offline":
        raise Conflict("go offline before deleting your account: your open work returns to dispatch")
    await repo.erase_whereabouts(conn, courier["id"])
    await delivery_repo.coarsen_courier_points(conn, courier["id"])
