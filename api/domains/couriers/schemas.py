"""Courier request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Latitude, Longitude, Output
from nearx.routing import Mode

DocumentKind = Literal["id_card", "driving_licence", "vehicle_registration", "insurance", "photo"]
HttpsUrl = Annotated[str, msgspec.Meta(pattern=r"^https://[^\s]+$", max_length=2000)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Document(Input):
    kind: DocumentKind
    url: HttpsUrl
    """Where the uploaded file lives (object storage comes later; a URL for now)."""


class CourierApplication(Input):
    city_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{2,40}$")]
    mode: Mode
    bag_slots: Annotated[int, msgspec.Meta(ge=1, le=8)]
    max_weight_g: Annotated[int, msgspec.Meta(ge=500, le=200_000)]
    documents: Annotated[list[Document], msgspec.Meta(min_length=1, max_length=10)]
    vehicle_plate: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9 -]{2,20}$")] | None = None


class Courier(Output):
    id: uuid.UUID
    user_id: uuid.UUID
    city_id: str
    status: str
    shift: str
    mode: Mode
    bag_slots: int
    max_weight_g: int
    documents: list[Document]
    vehicle_plate: str | None
    created_at: datetime
    updated_at: datetime


class Decision(Input):
    decision: Literal["approve", "reject", "suspend", "reinstate"]
    reason: Reason


class ShiftChange(Input):
    shift: Literal["offline", "online", "on_break"]
    reason: Reason | None = None


class Fix(Input):
    at: datetime
    lat: Latitude
    lng: Longitude
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)]
    speed_mps: Annotated[float, msgspec.Meta(ge=0, le=1_000)] | None = None


class LocationBatch(Input):
    fixes: Annotated[list[Fix], msgspec.Meta(min_length=1, max_length=500)]


class FixVerdict(Output):
    index: int
    used: bool
    flags: list[str]


class Position(Output):
    lat: float
    lng: float
    accuracy_m: float
    fixed_at: datetime
    h3_r7: str
    h3_r9: str


class LocationReceipt(Output):
    used: int
    flagged: int
    verdicts: list[FixVerdict]
    position: Position | None
    """The latest usable position after this batch."""


class HistoryEntry(Output):
    machine: str
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime
