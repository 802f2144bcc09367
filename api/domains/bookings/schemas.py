"""Request and response bodies of calendars, slots and bookings."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Output

Minutes = Annotated[int, msgspec.Meta(ge=0, le=240)]
Hours = Annotated[int, msgspec.Meta(ge=0, le=720)]
BookingStatus = Literal["held", "confirmed", "released", "cancelled", "completed"]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=1000)]


class AvailabilityWindow(Input, kw_only=True):
    weekday: Annotated[int, msgspec.Meta(ge=0, le=6)]
    starts: time
    ends: time


class CalendarException(Input, kw_only=True):
    day: date
    available: bool
    starts: time | None = None
    ends: time | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class CalendarInput(Input, kw_only=True):
    """The whole calendar; it replaces the previous one."""

    availability: Annotated[list[AvailabilityWindow], msgspec.Meta(max_length=100)]
    exceptions: Annotated[list[CalendarException], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list
    )
    buffer_min: Minutes = 0
    travel_min: Minutes = 0
    slot_step_min: Annotated[int, msgspec.Meta(ge=5, le=240)] = 30
    free_cancel_hours: Hours = 24
    min_reschedule_hours: Hours = 2
    emergency_preempts_holds: bool = False
    """Whether an emergency booking may take a slot that only an unconfirmed normal hold blocks."""


class Calendar(Output):
    provider_id: uuid.UUID
    buffer_min: int
    travel_min: int
    slot_step_min: int
    free_cancel_hours: int
    min_reschedule_hours: int
    emergency_preempts_holds: bool


class SlotOut(Output):
    starts_at: datetime
    ends_at: datetime


class BookingInput(Input, kw_only=True):
    service_id: uuid.UUID
    starts_at: datetime | None = None
    """Required, except for an emergency, which without it takes the earliest open slot."""
    linked_order_id: uuid.UUID | None = None
    """A merchant order with a try-before-buy product: this booking is its home trial."""
    emergency: bool = False
    """An urgent repair: first in the provider's queue, audited, and needs a reason."""
    emergency_reason: Reason | None = None


class RescheduleInput(Input, kw_only=True):
    starts_at: datetime


class CancelInput(Input, kw_only=True):
    reason: Reason


class CompleteInput(Input, kw_only=True):
    trial_outcome: Literal["kept", "returned"] | None = None


class Booking(Output):
    id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID
    customer_id: uuid.UUID
    status: BookingStatus
    starts_at: datetime
    ends_at: datetime
    hold_expires_at: datetime
    price_minor: int
    deposit_minor: int
    currency: str
    deposit_status: str | None
    linked_order_id: uuid.UUID | None
    trial_outcome: str | None
    cancelled_by: str | None
    cancellation_fee_minor: int
    emergency: bool
    emergency_reason: str | None
