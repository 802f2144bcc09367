"""Request and response bodies of the merchants context."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Latitude, Longitude, Output

MerchantKind = Literal["merchant", "provider"]
MerchantStatus = Literal["pending", "approved", "rejected", "suspended"]
StaffRole = Literal["owner", "manager", "staff"]
Category = Annotated[
    str, msgspec.Meta(pattern="^[a-z_]{2,40}$", description="e.g. restaurant, pharmacy, plumber")
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=1000)]
RadiusM = Annotated[int, msgspec.Meta(ge=100, le=50_000)]
PrepMinutes = Annotated[int, msgspec.Meta(ge=0, le=720)]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday (ISO order)")]
DocumentKey = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class MerchantApplication(Input, kw_only=True):
    kind: MerchantKind
    category: Category
    name: Name
    lat: Latitude
    lng: Longitude
    delivery_radius_m: RadiusM = 3000
    prep_time_min: PrepMinutes = 15
    eco_packaging: bool = False
    """Orders leave in reusable or compostable packaging (the ranker favours it for eco-minded customers)."""
    documents: Annotated[list[DocumentKey], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)


class Decision(Input, kw_only=True):
    decision: Literal["approve", "reject", "suspend", "reinstate"]
    reason: Reason


class SettingsPatch(Input, kw_only=True):
    delivery_radius_m: RadiusM | None = None
    prep_time_min: PrepMinutes | None = None
    eco_packaging: bool | None = None


class PauseSwitch(Input, kw_only=True):
    paused: bool


class HoursInterval(Input, kw_only=True):
    weekday: Weekday
    opens: time
    closes: time


class Holiday(Input, kw_only=True):
    day: date
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class HoursInput(Input, kw_only=True):
    """The whole weekly schedule and holiday list; it replaces the previous one."""

    hours: Annotated[list[HoursInterval], msgspec.Meta(max_length=50)]
    holidays: Annotated[list[Holiday], msgspec.Meta(max_length=366)] = msgspec.field(default_factory=list)


class StaffInput(Input, kw_only=True):
    user_id: uuid.UUID
    role: StaffRole


class StaffMember(Output):
    user_id: uuid.UUID
    role: StaffRole


class Merchant(Output):
    id: uuid.UUID
    city_id: str
    kind: MerchantKind
    category: str
    name: str
    status: MerchantStatus
    lat: float
    lng: float
    delivery_radius_m: int
    prep_time_min: int
    eco_packaging: bool
    paused: bool
    open_now: bool
    created_at: datetime


class StatusChange(Output):
    from_status: MerchantStatus | None
    to_status: MerchantStatus
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime
