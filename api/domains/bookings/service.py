"""Scheduling rules: calendars, open slots, hold → confirm (deposit) or release, reschedule, cancel.

Python computes what is offered (slots); the database decides what is taken:
the ``bookings_no_overlap`` trigger locks the provider row and refuses any
overlap, so twenty customers racing for one slot get exactly one booking even
if they bypass the slot list. Policy windows: a customer cancelling less than
``free_cancel_hours`` before the start forfeits the deposit; rescheduling
closes ``min_reschedule_hours`` before the start.

Emergency bookings (urgent repairs) need a reason, are audited, come first in
the provider's queue, may leave out the start to take the earliest open slot,
and, where the provider's calendar allows it, take a slot that only unconfirmed
normal holds block: those holds are released by the system in the same
transaction (a confirmed booking or another emergency is never displaced).
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import psycopg

from api import idempotency
from api.domains.bookings import repository as repo
from api.domains.bookings.ports import DepositGateway, DepositRequest
from api.domains.bookings.schemas import (
    Booking,
    BookingInput,
    Calendar,
    CalendarInput,
    CompleteInput,
    SlotOut,
)
from api.domains.bookings.slots import DayException, Slot, Window, is_bookable, open_slots, windows_for
from api.domains.catalog import repository as catalog_repo
from api.domains.merchants import service as merchants
from api.domains.orders import service as orders
from api.domains.orders.ports import RefundGateway
from api.errors import Conflict, InvalidInput, NotFound
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.money import Money
from nearx.outbox import append_event
from nearx.settings import Settings

SCHEMA_VERSION = 1
EMERGENCY_HORIZON_DAYS = 7
"""How far ahead an emergency without a start looks for the earliest open slot."""


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str
    user_id: uuid.UUID | None = None


SYSTEM = Actor("system")


def _out(row: dict[str, Any]) -> Booking:
    return Booking(
        id=row["id"],
        provider_id=row["provider_id"],
        service_id=row["service_id"],
        customer_id=row["customer_id"],
        status=row["status"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        hold_expires_at=row["hold_expires_at"],
        price_minor=row["price_minor"],
        deposit_minor=row["deposit_minor"],
        currency=row["currency"].strip(),
        deposit_status=row["deposit_status"],
        linked_order_id=row["linked_order_id"],
        trial_outcome=row["trial_outcome"],
        cancelled_by=row["cancelled_by"],
        cancellation_fee_minor=row["cancellation_fee_minor"],
        emergency=row["emergency"],
        emergency_reason=row["emergency_reason"],
    )


def _calendar_out(row: dict[str, Any]) -> Calendar:
    return Calendar(
        provider_id=row["provider_id"],
        buffer_min=row["buffer_min"],
        travel_min=row["travel_min"],
        slot_step_min=row["slot_step_min"],
        free_cancel_hours=row["free_cancel_hours"],
        min_reschedule_hours=row["min_reschedule_hours"],
        emergency_preempts_holds=row["emergency_preempts_holds"],
    )


# --------------------------------------------------------------------------- calendars and slots


async def set_calendar(
    conn: Connection, principal: Principal, provider_id: uuid.UUID, body: CalendarInput
) -> Calendar:
    windows = sorted((w.weekday, w.starts, w.ends) for w in body.availability)
    for weekday, starts, ends in windows:
        if starts.tzinfo is not None or ends.tzinfo is not None or starts >= ends:
            raise InvalidInput(f"weekday {weekday}: a window is local time without offset, start before end")
    for (day_a, _, ends_a), (day_b, starts_b, _) in itertools.pairwise(windows):
        if day_a == day_b and starts_b < ends_a:
            raise InvalidInput(f"weekday {day_a}: availability windows overlap")
    for exception in body.exceptions:
        if (exception.starts is None) != (exception.ends is None):
            raise InvalidInput(f"{exception.day}: give both starts and ends, or neither (whole day)")
        if exception.starts is not None and exception.ends is not None and exception.starts >= exception.ends:
            raise InvalidInput(f"{exception.day}: the exception window must start before it ends")
        if exception.available and exception.starts is None:
            raise InvalidInput(f"{exception.day}: extra availability needs a window")
    async with conn.transaction():
        provider = await merchants.get_row(conn, provider_id, for_update=True)
        await merchants.require_staff(conn, provider_id, principal, merchants.MANAGERS)
        if provider["kind"] != "provider":
            raise Conflict("only service providers keep a booking calendar")
        row = await repo.upsert_calendar(
            conn,
            provider_id,
            {
                "buffer_min": body.buffer_min,
                "travel_min": body.travel_min,
                "slot_step_min": body.slot_step_min,
                "free_cancel_hours": body.free_cancel_hours,
                "min_reschedule_hours": body.min_reschedule_hours,
                "emergency_preempts_holds": body.emergency_preempts_holds,
            },
        )
        await repo.replace_availability(
            conn,
            provider_id,
            windows,
            [(e.day, e.starts, e.ends, e.available, e.reason) for e in body.exceptions],
        )
    return _calendar_out(row)


async def _windows(conn: Connection, provider_id: uuid.UUID, day: date) -> list[tuple[time, time]]:
    weekly: dict[int, list[Window]] = defaultdict(list)
    for row in await repo.availability(conn, provider_id):
        weekly[row["weekday"]].append(Window(row["starts"], row["ends"]))
    exceptions = [
        DayException(row["starts"], row["ends"], row["available"])
        for row in await repo.exceptions_on(conn, provider_id, day)
    ]
    return windows_for(day, weekly, exceptions)


async def _provider_service(
    conn: Connection, principal: Principal, provider_id: uuid.UUID | None, service_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    """The visible provider, its active service, its calendar, and its city's timezone."""
    service = await catalog_repo.get_service(conn, service_id)
    if (
        service is None
        or not service["active"]
        or (provider_id is not None and service["merchant_id"] != provider_id)
    ):
        raise NotFound(f"service {service_id} was not found")
    provider = await merchants.visible_row(conn, principal, service["merchant_id"])
    calendar = await repo.calendar(conn, provider["id"])
    if calendar is None:
        raise Conflict("this provider has not published a calendar yet")
    zones = await merchants.city_timezones(conn)
    return provider, service, calendar, zones[provider["city_id"]]


async def _open_on(
    conn: Connection,
    day: date,
    timezone: str,
    service: dict[str, Any],
    calendar: dict[str, Any],
    now: datetime,
    *,
    over_normal_holds: bool = False,
) -> list[Slot]:
    """Open slots of the service on a local day; ``over_normal_holds`` ignores unconfirmed normal holds."""
    day_start = datetime.combine(day, time(0), ZoneInfo(timezone))
    blocking = await repo.blocking_between(
        conn, calendar["provider_id"], day_start - timedelta(days=1), day_start + timedelta(days=2), now
    )
    return open_slots(
        day,
        timezone,
        await _windows(conn, calendar["provider_id"], day),
        duration_min=service["duration_min"],
        step_min=calendar["slot_step_min"],
        travel_min=calendar["travel_min"],
        buffer_min=calendar["buffer_min"],
        busy=[
            (row["blocked_from"], row["blocked_until"])
            for row in blocking
            if not (over_normal_holds and row["status"] == "held" and not row["emergency"])
        ],
        now=now,
    )


async def slots(
    conn: Connection, principal: Principal, provider_id: uuid.UUID, day: date, service_id: uuid.UUID
) -> list[SlotOut]:
    _, service, calendar, timezone = await _provider_service(conn, principal, provider_id, service_id)
    found = await _open_on(conn, day, timezone, service, calendar, utc_now())
    return [SlotOut(starts_at=slot.starts_at, ends_at=slot.ends_at) for slot in found]


async def _earliest_start(
    conn: Connection, timezone: str, service: dict[str, Any], calendar: dict[str, Any]
) -> datetime:
    """The first open slot from now on (over normal holds if the provider lets emergencies pre-empt)."""
    now = utc_now()
    today = now.astimezone(ZoneInfo(timezone)).date()
    for offset in range(EMERGENCY_HORIZON_DAYS):
        found = await _open_on(
            conn,
            today + timedelta(days=offset),
            timezone,
            service,
            calendar,
            now,
            over_normal_holds=calendar["emergency_preempts_holds"],
        )
        if found:
            return found[0].starts_at
    raise Conflict(f"this provider has no open slot in the next {EMERGENCY_HORIZON_DAYS} days")


async def _check_start(
    conn: Connection,
    provider_id: uuid.UUID,
    starts_at: datetime,
    timezone: str,
    duration_min: int,
    step_min: int,
) -> None:
    if starts_at.tzinfo is None:
        raise InvalidInput("starts_at needs a UTC offset")
    if starts_at <= utc_now():
        raise InvalidInput("that slot is in the past")
    local_day = starts_at.astimezone(ZoneInfo(timezone)).date()
    windows = await _windows(conn, provider_id, local_day)
    if not is_bookable(starts_at, timezone, windows, duration_min=duration_min, step_min=step_min):
        raise InvalidInput("that time is outside the provider's availability")


def _span(starts_at: datetime, duration_min: int, calendar: dict[str, Any]) -> dict[str, datetime]:
    ends_at = starts_at + timedelta(minutes=duration_min)
    return {
        "starts_at": starts_at,
        "ends_at": ends_at,
        "blocked_from": starts_at - timedelta(minutes=calendar["travel_min"]),
        "blocked_until": ends_at + timedelta(minutes=calendar["buffer_min"]),
    }


# --------------------------------------------------------------------------- the booking lifecycle


async def _check(conn: Connection, booking: dict[str, Any], to_status: str, actor: Actor) -> None:
    """Refuse (409) a move the transition table does not allow, before any side effect."""
    if not await repo.allowed(conn, booking["status"], to_status, actor.kind):
        raise Conflict(f"a {actor.kind} cannot move a booking from {booking['status']} to {to_status}")


async def _record(
    conn: Connection, booking: dict[str, Any], to_status: str, actor: Actor, reason: str | None, event: str
) -> None:
    """Record a checked move from ``booking`` (the row as locked) and emit ``booking.<event>``.

    Called after the row was updated, so the event carries the booking as it now is.
    """
    await repo.record_transition(
        conn,
        {
            "booking_id": booking["id"],
            "city_id": booking["city_id"],
            "from_status": booking["status"],
            "to_status": to_status,
            "actor_kind": actor.kind,
            "actor_id": actor.user_id,
            "reason": reason,
        },
    )
    await _event(conn, booking["id"], event, actor, reason)


async def _event(
    conn: Connection, booking_id: uuid.UUID, event: str, actor: Actor, reason: str | None
) -> None:
    row = await repo.get_booking(conn, booking_id)
    assert row is not None
    await append_event(
        conn,
        event_type=f"booking.{event}",
        aggregate_type="booking",
        aggregate_id=booking_id,
        payload={**msgspec.to_builtins(_out(row)), "actor": actor.kind, "reason": reason},
        city_id=row["city_id"],
        schema_version=SCHEMA_VERSION,
    )


def _check_emergency(body: BookingInput) -> None:
    if body.emergency and not body.emergency_reason:
        raise InvalidInput("an emergency booking needs a reason (it is audited)")
    if not body.emergency and body.emergency_reason:
        raise InvalidInput("emergency_reason is only for emergency bookings")
    if not body.emergency and body.starts_at is None:
        raise InvalidInput("starts_at is required (only an emergency may take the earliest open slot)")


async def _preempt_normal_holds(
    conn: Connection, provider_id: uuid.UUID, span: dict[str, datetime], emergency_id: uuid.UUID
) -> list[uuid.UUID]:
    """Release the unconfirmed normal holds in the emergency's way; returns their ids (for the audit)."""
    holds = await repo.lock_preemptible_holds(
        conn, provider_id, span["blocked_from"], span["blocked_until"], utc_now()
    )
    for held in holds:
        await _release_by_system(conn, held, f"pre-empted by emergency booking {emergency_id}")
    return [held["id"] for held in holds]


async def provider_bookings(
    conn: Connection, principal: Principal, provider_id: uuid.UUID, statuses: list[str], limit: int
) -> list[Booking]:
    """The provider's schedule queue: emergencies first (they jump it), then by start time."""
    await merchants.require_staff(conn, provider_id, principal)
    return [_out(row) for row in await repo.provider_queue(conn, provider_id, statuses, utc_now(), limit)]


async def hold(
    conn: Connection, principal: Principal, body: BookingInput, *, key: str, settings: Settings
) -> tuple[int, Any]:
    """Hold a slot for ``booking_hold_s``; the database refuses a slot already taken (409)."""
    _check_emergency(body)
    scope = f"bookings.create:{principal.user_id}"
    async with conn.transaction():
        stored = await idempotency.claim(
            conn, scope=scope, key=key, fingerprint=idempotency.request_fingerprint(body)
        )
        if stored is not None:
            return stored.status, stored.body
        provider, service, calendar, timezone = await _provider_service(
            conn, principal, None, body.service_id
        )
        if provider["status"] != "approved" or provider["paused"]:
            raise Conflict("this provider is not taking bookings right now")
        if body.starts_at is None:
            starts_at = await _earliest_start(conn, timezone, service, calendar)
        else:
            starts_at = body.starts_at
            await _check_start(
                conn, provider["id"], starts_at, timezone, service["duration_min"], calendar["slot_step_min"]
            )
        if (
            body.linked_order_id is not None
            and await repo.trial_order(conn, body.linked_order_id, principal.user_id) is None
        ):
            raise InvalidInput("the linked order is not yours or has no try-before-buy product")
        booking_id = new_id()
        span = _span(starts_at, service["duration_min"], calendar)
        preempted = (
            await _preempt_normal_holds(conn, provider["id"], span, booking_id)
            if body.emergency and calendar["emergency_preempts_holds"]
            else []
        )
        try:
            async with conn.transaction():  # a savepoint, so the trigger's refusal is a clean 409
                await repo.insert_booking(
                    conn,
                    {
                        "id": booking_id,
                        "provider_id": provider["id"],
                        "service_id": service["id"],
                        "customer_id": principal.user_id,
                        "city_id": provider["city_id"],
                        **span,
                        "hold_expires_at": utc_now() + timedelta(seconds=settings.booking_hold_s),
                        "price_minor": service["price_minor"],
                        "deposit_minor": service["deposit_minor"],
                        "currency": service["currency"].strip(),
                        "linked_order_id": body.linked_order_id,
                        "emergency": body.emergency,
                        "emergency_reason": body.emergency_reason,
                    },
                )
        except psycopg.errors.ExclusionViolation as exc:
            raise Conflict("that slot was just taken") from exc
        booking = await repo.get_booking(conn, booking_id)
        assert booking is not None
        reason = f"emergency: {body.emergency_reason}" if body.emergency else None
        await repo.record_transition(
            conn,
            {
                "booking_id": booking_id,
                "city_id": provider["city_id"],
                "from_status": None,
                "to_status": "held",
                "actor_kind": "customer",
                "actor_id": principal.user_id,
                "reason": reason,
            },
        )
        if body.emergency:
            await repo.insert_emergency_audit(
                conn,
                {
                    "booking_id": booking_id,
                    "provider_id": provider["id"],
                    "city_id": provider["city_id"],
                    "customer_id": principal.user_id,
                    "reason": body.emergency_reason,
                    "preempted": preempted,
                },
            )
        await _event(conn, booking_id, "held", Actor("customer", principal.user_id), reason)
        result = msgspec.to_builtins(_out(booking))
        await idempotency.remember(conn, scope=scope, key=key, status=201, body=result)
    return 201, result


async def _actor(conn: Connection, principal: Principal, booking: dict[str, Any]) -> Actor:
    if booking["customer_id"] == principal.user_id:
        return Actor("customer", principal.user_id)
    if await merchants.staff_role_of(conn, booking["provider_id"], principal.user_id) is not None:
        return Actor("provider", principal.user_id)
    if principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa:
        return Actor("admin", principal.user_id)
    raise NotFound(f"booking {booking['id']} was not found")


async def _locked(
    conn: Connection, principal: Principal, booking_id: uuid.UUID
) -> tuple[dict[str, Any], Actor]:
    booking = await repo.get_booking(conn, booking_id, for_update=True)
    if booking is None:
        raise NotFound(f"booking {booking_id} was not found")
    return booking, await _actor(conn, principal, booking)


async def get(conn: Connection, principal: Principal, booking_id: uuid.UUID) -> Booking:
    booking = await repo.get_booking(conn, booking_id)
    if booking is None:
        raise NotFound(f"booking {booking_id} was not found")
    await _actor(conn, principal, booking)
    return _out(booking)


async def confirm(
    conn: Connection, principal: Principal, booking_id: uuid.UUID, gateway: DepositGateway
) -> Booking:
    """Confirm a held slot by paying the deposit through payments; an expired hold is a 409."""
    async with conn.transaction():
        booking, actor = await _locked(conn, principal, booking_id)
        if booking["status"] == "held" and booking["hold_expires_at"] <= utc_now():
            raise Conflict("the hold expired; pick a slot again")
        await _check(conn, booking, "confirmed", actor)
        outcome = await gateway.collect_deposit(
            conn,
            DepositRequest(
                booking_id=booking_id,
                customer_id=booking["customer_id"],
                provider_id=booking["provider_id"],
                city_id=booking["city_id"],
                amount=Money(booking["deposit_minor"], booking["currency"].strip()),
            ),
        )
        if outcome.status == "failed":
            raise Conflict("the deposit could not be collected; the slot stays held until it expires")
        try:
            async with conn.transaction():
                await repo.update_booking(
                    conn,
                    booking_id,
                    {
                        "status": "confirmed",
                        "deposit_status": outcome.status,
                        "deposit_reference": outcome.payment_reference,
                    },
                )
        except psycopg.errors.ExclusionViolation as exc:
            raise Conflict("that slot was taken meanwhile") from exc
        await _record(conn, booking, "confirmed", actor, None, "confirmed")
        await _event(conn, booking_id, "deposit_" + outcome.status, actor, None)
        updated = await repo.get_booking(conn, booking_id)
        assert updated is not None
    return _out(updated)


async def release(conn: Connection, principal: Principal, booking_id: uuid.UUID) -> Booking:
    async with conn.transaction():
        booking, actor = await _locked(conn, principal, booking_id)
        await _check(conn, booking, "released", actor)
        await repo.update_booking(conn, booking_id, {"status": "released"})
        await _record(conn, booking, "released", actor, None, "released")
        updated = await repo.get_booking(conn, booking_id)
        assert updated is not None
    return _out(updated)


async def cancel(conn: Connection, principal: Principal, booking_id: uuid.UUID, reason: str) -> Booking:
    """Cancel a confirmed booking; a customer inside the no-free-cancel window forfeits the deposit."""
    async with conn.transaction():
        booking, actor = await _locked(conn, principal, booking_id)
        calendar = await repo.calendar(conn, booking["provider_id"])
        assert calendar is not None
        late = booking["starts_at"] - utc_now() < timedelta(hours=calendar["free_cancel_hours"])
        fee = booking["deposit_minor"] if actor.kind == "customer" and late else 0
        await _check(conn, booking, "cancelled", actor)
        await repo.update_booking(
            conn,
            booking_id,
            {"status": "cancelled", "cancelled_by": actor.kind, "cancellation_fee_minor": fee},
        )
        await _record(conn, booking, "cancelled", actor, reason, "cancelled")
        updated = await repo.get_booking(conn, booking_id)
        assert updated is not None
    return _out(updated)


async def reschedule(
    conn: Connection, principal: Principal, booking_id: uuid.UUID, starts_at: datetime
) -> Booking:
    async with conn.transaction():
        booking, actor = await _locked(conn, principal, booking_id)
        if booking["status"] != "confirmed":
            raise Conflict("only a confirmed booking can be rescheduled")
        calendar = await repo.calendar(conn, booking["provider_id"])
        service = await catalog_repo.get_service(conn, booking["service_id"])
        assert calendar is not None
        assert service is not None
        if booking["starts_at"] - utc_now() < timedelta(hours=calendar["min_reschedule_hours"]):
            raise Conflict(f"rescheduling closes {calendar['min_reschedule_hours']} h before the start")
        zones = await merchants.city_timezones(conn)
        await _check_start(
            conn,
            booking["provider_id"],
            starts_at,
            zones[booking["city_id"]],
            service["duration_min"],
            calendar["slot_step_min"],
        )
        await _check(conn, booking, "confirmed", actor)
        try:
            async with conn.transaction():
                await repo.update_booking(
                    conn, booking_id, _span(starts_at, service["duration_min"], calendar)
                )
        except psycopg.errors.ExclusionViolation as exc:
            raise Conflict("the new time is already taken") from exc
        reason = f"rescheduled from {booking['starts_at'].isoformat()}"
        await _record(conn, booking, "confirmed", actor, reason, "rescheduled")
        updated = await repo.get_booking(conn, booking_id)
        assert updated is not None
    return _out(updated)


async def complete(
    conn: Connection, principal: Principal, booking_id: uuid.UUID, body: CompleteInput, refunds: RefundGateway
) -> Booking:
    """The provider marks the visit done; a home trial also records whether the product was kept.

    Kept: the linked order stands as a sale. Returned: in the same transaction the linked
    order is refunded in full (delivered) or cancelled (not yet accepted).
    """
    async with conn.transaction():
        booking, actor = await _locked(conn, principal, booking_id)
        if booking["linked_order_id"] is not None and body.trial_outcome is None:
            raise InvalidInput("a try-before-buy visit needs its outcome: kept or returned")
        if booking["linked_order_id"] is None and body.trial_outcome is not None:
            raise InvalidInput("only a try-before-buy visit has a trial outcome")
        await _check(conn, booking, "completed", actor)
        changes: dict[str, Any] = {"status": "completed"}
        if body.trial_outcome is not None:
            changes["trial_outcome"] = body.trial_outcome
        await repo.update_booking(conn, booking_id, changes)
        await _record(conn, booking, "completed", actor, None, "completed")
        if body.trial_outcome == "returned":
            await orders.settle_trial_return(conn, booking["linked_order_id"], "home trial returned", refunds)
        if body.trial_outcome is not None:
            await _event(conn, booking_id, f"trial_{body.trial_outcome}", actor, None)
        updated = await repo.get_booking(conn, booking_id)
        assert updated is not None
    return _out(updated)


async def _release_by_system(conn: Connection, booking: dict[str, Any], reason: str) -> None:
    """Release a locked hold as ``system`` (expiry, or an emergency taking its slot)."""
    await _check(conn, booking, "released", SYSTEM)
    await repo.update_booking(conn, booking["id"], {"status": "released"})
    await _record(conn, booking, "released", SYSTEM, reason, "released")


async def release_expired_holds(conn: Connection, now: datetime) -> int:
    """Release holds nobody confirmed in time (the trigger already ignores them; this tidies state)."""
    released = 0
    for booking_id in await repo.expired_holds(conn, now):
        async with conn.transaction():
            booking = await repo.get_booking(conn, booking_id, for_update=True)
            if booking is None or booking["status"] != "held" or booking["hold_expires_at"] > now:
                continue
            await _release_by_system(conn, booking, "hold expired")
            released += 1
    return released
