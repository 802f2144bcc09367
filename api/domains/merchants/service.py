"""Merchant rules: onboarding, the approval workflow, hours, the busy switch and staff roles.

Only an approved merchant is visible to customers or can sell. The approval
workflow is data (``merchant_status_transitions``); every move is recorded in
``merchant_status_history`` with the admin and the reason, and emits an event
in the same transaction. Per-merchant staff roles are checked here against
``merchant_staff`` (not in the token), so revoking staff takes effect at once.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from api.domains.cities.service import resolve as resolve_city
from api.domains.identity import audit
from api.domains.identity.audit import RequestContext, SecurityEvent
from api.domains.merchants import repository as repo
from api.domains.merchants.hours import Interval, is_open
from api.domains.merchants.schemas import (
    Decision,
    HoursInput,
    Merchant,
    MerchantApplication,
    SettingsPatch,
    StaffInput,
    StaffMember,
    StatusChange,
)
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.security.principal import Principal, Role
from api.storage.service import require_owned
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.geo import h3_cells
from nearx.ids import new_id
from nearx.outbox import append_event
from nearx.settings import Settings

MANAGERS = frozenset({"owner", "manager"})
ANY_STAFF = frozenset({"owner", "manager", "staff"})
_DECISION_TARGET = {
    "approve": "approved",
    "reject": "rejected",
    "suspend": "suspended",
    "reinstate": "approved",
}


async def require_staff(
    conn: Connection, merchant_id: uuid.UUID, principal: Principal, roles: frozenset[str] = ANY_STAFF
) -> str:
    """The caller's role at the merchant, or 403 when they hold none of ``roles`` there."""
    role = await repo.staff_role(conn, merchant_id, principal.user_id)
    if role is None or role not in roles:
        raise Forbidden(f"requires one of the merchant roles: {', '.join(sorted(roles))}")
    return role


async def staff_role_of(conn: Connection, merchant_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """The user's role at the merchant, or ``None`` (for contexts that decide for themselves)."""
    return await repo.staff_role(conn, merchant_id, user_id)


async def city_timezones(conn: Connection) -> dict[str, str]:
    """IANA timezone of every city, for local-time rules (hours, calendars)."""
    return await repo.city_timezones(conn)


async def open_now(conn: Connection, merchants: list[dict[str, Any]], now: datetime) -> dict[uuid.UUID, bool]:
    """Whether each merchant is open at ``now`` in its city's local time."""
    ids = [merchant["id"] for merchant in merchants]
    hour_rows, holiday_rows = await repo.hours_of(conn, ids)
    zones = await repo.city_timezones(conn)
    hours: dict[uuid.UUID, list[Interval]] = defaultdict(list)
    holidays: dict[uuid.UUID, set[date]] = defaultdict(set)
    for row in hour_rows:
        hours[row["merchant_id"]].append(Interval(row["weekday"], row["opens"], row["closes"]))
    for row in holiday_rows:
        holidays[row["merchant_id"]].add(row["day"])
    return {
        merchant["id"]: is_open(
            hours[merchant["id"]], holidays[merchant["id"]], zones[merchant["city_id"]], now
        )
        for merchant in merchants
    }


def ensure_can_sell(merchant: dict[str, Any], *, is_open_now: bool) -> None:
    """Refuse business with a merchant that is not approved, is paused or is closed."""
    if merchant["status"] != "approved":
        raise NotFound(f"merchant {merchant['id']} was not found")
    if merchant["paused"]:
        raise Conflict(f"merchant {merchant['name']!r} is not taking orders right now")
    if not is_open_now:
        raise Conflict(f"merchant {merchant['name']!r} is closed")


def _to_output(row: dict[str, Any], open_flag: bool) -> Merchant:
    return Merchant(
        id=row["id"],
        city_id=row["city_id"],
        kind=row["kind"],
        category=row["category"],
        name=row["name"],
        status=row["status"],
        lat=row["lat"],
        lng=row["lng"],
        delivery_radius_m=row["delivery_radius_m"],
        prep_time_min=row["prep_time_min"],
        eco_packaging=row["eco_packaging"],
        paused=row["paused"],
        open_now=open_flag and row["status"] == "approved" and not row["paused"],
        created_at=row["created_at"],
    )


async def _output(conn: Connection, row: dict[str, Any]) -> Merchant:
    flags = await open_now(conn, [row], utc_now())
    return _to_output(row, flags[row["id"]])


async def apply(
    conn: Connection, principal: Principal, body: MerchantApplication, settings: Settings
) -> Merchant:
    """File an application; the applicant becomes the owner of a merchant pending approval."""
    async with conn.transaction():
        city = await resolve_city(conn, lat=body.lat, lng=body.lng)
        if city is None:
            raise InvalidInput("the location is outside every city NEARX serves")
        cells = h3_cells(body.lat, body.lng, settings.h3_resolutions)
        if 7 not in cells or 9 not in cells:
            raise InvalidInput("the platform needs H3 resolutions 7 and 9 configured")
        await require_owned(conn, principal.user_id, body.documents, "document")
        merchant_id = new_id()
        await repo.insert_merchant(
            conn,
            {
                "id": merchant_id,
                "city_id": city.id,
                "kind": body.kind,
                "category": body.category,
                "name": body.name,
                "owner_user_id": principal.user_id,
                "lat": body.lat,
                "lng": body.lng,
                "h3_r7": cells[7],
                "h3_r9": cells[9],
                "delivery_radius_m": body.delivery_radius_m,
                "prep_time_min": body.prep_time_min,
                "eco_packaging": body.eco_packaging,
                "documents": list(body.documents),
            },
        )
        await repo.upsert_staff(conn, merchant_id, principal.user_id, "owner", principal.user_id)
        await repo.record_status(
            conn,
            merchant_id=merchant_id,
            city_id=city.id,
            from_status=None,
            to_status="pending",
            actor_id=principal.user_id,
            reason="application filed",
        )
        await append_event(
            conn,
            event_type="merchant.applied",
            aggregate_type="merchant",
            aggregate_id=merchant_id,
            payload={"merchant_id": str(merchant_id), "kind": body.kind, "category": body.category},
            city_id=city.id,
        )
        row = await repo.get_merchant(conn, merchant_id)
        assert row is not None
    return await _output(conn, row)


async def decide(conn: Connection, admin: Principal, merchant_id: uuid.UUID, body: Decision) -> Merchant:
    """An admin moves an application through the workflow; illegal moves are 409."""
    target = _DECISION_TARGET[body.decision]
    async with conn.transaction():
        row = await repo.get_merchant(conn, merchant_id, for_update=True)
        if row is None:
            raise NotFound(f"merchant {merchant_id} was not found")
        if not await repo.is_transition_allowed(conn, row["status"], target):
            raise Conflict(f"a merchant cannot go from {row['status']} to {target}")
        await repo.set_status(conn, merchant_id, target)
        await repo.record_status(
            conn,
            merchant_id=merchant_id,
            city_id=row["city_id"],
            from_status=row["status"],
            to_status=target,
            actor_id=admin.user_id,
            reason=body.reason,
        )
        await append_event(
            conn,
            event_type=f"merchant.{target}",
            aggregate_type="merchant",
            aggregate_id=merchant_id,
            payload={
                "merchant_id": str(merchant_id),
                "from": row["status"],
                "to": target,
                "reason": body.reason,
            },
            city_id=row["city_id"],
        )
        updated = await repo.get_merchant(conn, merchant_id)
        assert updated is not None
    return await _output(conn, updated)


async def visible_row(conn: Connection, principal: Principal, merchant_id: uuid.UUID) -> dict[str, Any]:
    """Approved merchants are public; others only to their staff and to admins (404 otherwise)."""
    row = await repo.get_merchant(conn, merchant_id)
    if row is None or (row["status"] != "approved" and not await _is_insider(conn, row, principal)):
        raise NotFound(f"merchant {merchant_id} was not found")
    return row


async def get_visible(conn: Connection, principal: Principal, merchant_id: uuid.UUID) -> Merchant:
    return await _output(conn, await visible_row(conn, principal, merchant_id))


async def get_row(conn: Connection, merchant_id: uuid.UUID, *, for_update: bool = False) -> dict[str, Any]:
    """The merchant's row for other contexts (catalog, orders, bookings); 404 when unknown."""
    row = await repo.get_merchant(conn, merchant_id, for_update=for_update)
    if row is None:
        raise NotFound(f"merchant {merchant_id} was not found")
    return row


async def _is_insider(conn: Connection, row: dict[str, Any], principal: Principal) -> bool:
    if principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa:
        return True
    return await repo.staff_role(conn, row["id"], principal.user_id) is not None


async def list_visible(
    conn: Connection, *, city_id: str | None, after: uuid.UUID | None, limit: int
) -> list[Merchant]:
    rows = await repo.list_approved(conn, city_id=city_id, after=after, limit=limit)
    flags = await open_now(conn, rows, utc_now())
    return [_to_output(row, flags[row["id"]]) for row in rows]


async def history(conn: Connection, principal: Principal, merchant_id: uuid.UUID) -> list[StatusChange]:
    row = await repo.get_merchant(conn, merchant_id)
    if row is None or not await _is_insider(conn, row, principal):
        raise NotFound(f"merchant {merchant_id} was not found")
    return [
        StatusChange(
            from_status=r["from_status"],
            to_status=r["to_status"],
            actor_id=r["actor_id"],
            reason=r["reason"],
            at=r["at"],
        )
        for r in await repo.status_history(conn, merchant_id)
    ]


async def _locked(conn: Connection, merchant_id: uuid.UUID) -> dict[str, Any]:
    return await get_row(conn, merchant_id, for_update=True)


async def update_settings(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, body: SettingsPatch
) -> Merchant:
    changes = {
        key: value
        for key, value in (
            ("delivery_radius_m", body.delivery_radius_m),
            ("prep_time_min", body.prep_time_min),
            ("eco_packaging", body.eco_packaging),
        )
        if value is not None
    }
    async with conn.transaction():
        row = await _locked(conn, merchant_id)
        await require_staff(conn, merchant_id, principal, MANAGERS)
        await repo.update_settings(conn, merchant_id, changes)
        await append_event(
            conn,
            event_type="merchant.updated",
            aggregate_type="merchant",
            aggregate_id=merchant_id,
            payload={"merchant_id": str(merchant_id), "changes": changes},
            city_id=row["city_id"],
        )
        updated = await repo.get_merchant(conn, merchant_id)
        assert updated is not None
    return await _output(conn, updated)


async def set_paused(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, paused: bool
) -> Merchant:
    """The busy switch: any staff member may flip it (the kitchen knows when it is overwhelmed)."""
    async with conn.transaction():
        row = await _locked(conn, merchant_id)
        await require_staff(conn, merchant_id, principal, ANY_STAFF)
        if row["paused"] != paused:
            await repo.update_settings(conn, merchant_id, {"paused": paused})
            await append_event(
                conn,
                event_type="merchant.paused" if paused else "merchant.resumed",
                aggregate_type="merchant",
                aggregate_id=merchant_id,
                payload={"merchant_id": str(merchant_id), "by": str(principal.user_id)},
                city_id=row["city_id"],
            )
        updated = await repo.get_merchant(conn, merchant_id)
        assert updated is not None
    return await _output(conn, updated)


async def set_hours(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, body: HoursInput
) -> Merchant:
    intervals = sorted((h.weekday, h.opens, h.closes) for h in body.hours)
    for weekday, opens, closes in intervals:
        if opens.tzinfo is not None or closes.tzinfo is not None:
            raise InvalidInput("opening hours are local wall-clock times: send them without an offset")
        if opens >= closes:
            raise InvalidInput(f"on weekday {weekday} the opening time must be before the closing time")
    for (day_a, _, closes_a), (day_b, opens_b, _) in itertools.pairwise(intervals):
        if day_a == day_b and opens_b < closes_a:
            raise InvalidInput(f"on weekday {day_a} two opening intervals overlap")
    days = [holiday.day for holiday in body.holidays]
    if len(days) != len(set(days)):
        raise InvalidInput("a holiday date is listed twice")
    async with conn.transaction():
        row = await _locked(conn, merchant_id)
        await require_staff(conn, merchant_id, principal, MANAGERS)
        await repo.replace_hours(conn, merchant_id, intervals, [(h.day, h.reason) for h in body.holidays])
        await append_event(
            conn,
            event_type="merchant.hours_changed",
            aggregate_type="merchant",
            aggregate_id=merchant_id,
            payload={"merchant_id": str(merchant_id)},
            city_id=row["city_id"],
        )
    return await _output(conn, row)


async def _record_staff_change(
    conn: Connection,
    merchant: dict[str, Any],
    owner: Principal,
    user_id: uuid.UUID,
    *,
    role: str | None,
    previous: str | None,
    context: RequestContext,
) -> None:
    """A per-merchant role change is a security event (audit trail) and a domain event (outbox)."""
    detail = {"merchant_id": str(merchant["id"]), "role": role, "previous_role": previous}
    event = SecurityEvent.MERCHANT_ROLE_REVOKED if role is None else SecurityEvent.MERCHANT_ROLE_GRANTED
    await audit.record(conn, event, context=context, user_id=user_id, actor_id=owner.user_id, **detail)
    await append_event(
        conn,
        event_type="merchant.staff_removed" if role is None else "merchant.staff_changed",
        aggregate_type="merchant",
        aggregate_id=merchant["id"],
        payload={**detail, "user_id": str(user_id), "by": str(owner.user_id)},
        city_id=merchant["city_id"],
    )


async def add_staff(
    conn: Connection,
    principal: Principal,
    merchant_id: uuid.UUID,
    body: StaffInput,
    *,
    context: RequestContext,
) -> list[StaffMember]:
    """Owners manage staff; there is always exactly one owner, so ownership is not handed out here."""
    if body.role == "owner":
        raise InvalidInput("ownership cannot be granted through the staff list")
    async with conn.transaction():
        merchant = await _locked(conn, merchant_id)
        await require_staff(conn, merchant_id, principal, frozenset({"owner"}))
        if not await repo.user_exists(conn, body.user_id):
            raise InvalidInput(f"user {body.user_id} does not exist")
        previous = await repo.staff_role(conn, merchant_id, body.user_id)
        if previous == "owner":
            raise Conflict("the owner's role cannot be changed")
        await repo.upsert_staff(conn, merchant_id, body.user_id, body.role, principal.user_id)
        if previous != body.role:  # re-sending the same role changes nothing worth auditing
            await _record_staff_change(
                conn, merchant, principal, body.user_id, role=body.role, previous=previous, context=context
            )
        rows = await repo.list_staff(conn, merchant_id)
    return [StaffMember(user_id=r["user_id"], role=r["role"]) for r in rows]


async def remove_staff(
    conn: Connection,
    principal: Principal,
    merchant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    context: RequestContext,
) -> None:
    async with conn.transaction():
        merchant = await _locked(conn, merchant_id)
        await require_staff(conn, merchant_id, principal, frozenset({"owner"}))
        previous = await repo.staff_role(conn, merchant_id, user_id)
        if previous == "owner":
            raise Conflict("the owner cannot be removed")
        if not await repo.delete_staff(conn, merchant_id, user_id):
            raise NotFound(f"user {user_id} is not staff of this merchant")
        await _record_staff_change(
            conn, merchant, principal, user_id, role=None, previous=previous, context=context
        )


async def list_staff(conn: Connection, principal: Principal, merchant_id: uuid.UUID) -> list[StaffMember]:
    await require_staff(conn, merchant_id, principal, ANY_STAFF)
    return [
        StaffMember(user_id=r["user_id"], role=r["role"]) for r in await repo.list_staff(conn, merchant_id)
    ]
