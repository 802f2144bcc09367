"""Delivery request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Latitude, Longitude, Output

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class RoundRequest(Input):
    city_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{2,40}$")]


class RoundReport(Output):
    round_id: uuid.UUID
    opened: int
    """Deliveries created this round for merchant orders that needed one."""
    expired: int
    """Offers that ran out of time and went back to dispatch."""
    offered: int
    waiting: int
    """Pending deliveries no courier could take this round."""
    total_cost_s: float
    silent_alerts: int = 0
    """Couriers holding picked-up goods who went silent, flagged to support this round."""


class Offer(Output):
    id: uuid.UUID
    delivery_id: uuid.UUID
    bundle_id: uuid.UUID | None
    status: str
    dropoff_eta_s: float
    offered_at: datetime
    expires_at: datetime


class MyOffers(Output):
    pending: list[Offer]
    refused_last_24h: int
    """Declined or let expire: tracked, for support and incentives."""


class OfferResponse(Input):
    reason: Reason | None = None


UnitCoordinate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Stroke = Annotated[list[tuple[UnitCoordinate, UnitCoordinate]], msgspec.Meta(min_length=2, max_length=1000)]
"""One pen stroke: points on the signature pad, scaled to 0..1 on both axes."""
ObjectKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Proof(Input):
    lat: Latitude
    lng: Longitude
    """Where the courier is when handing over (checked against the drop-off)."""
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")] | None = None
    """The customer's handover code, required for some merchant categories."""
    photo_key: ObjectKey | None = None
    """A photo of the handed-over goods: the key of an image you uploaded (``POST /v1/uploads/media``)."""
    signature_key: ObjectKey | None = None
    """The customer's signature as an image you uploaded, or give ``signature_strokes`` instead."""
    signature_strokes: Annotated[list[Stroke], msgspec.Meta(min_length=1, max_length=50)] | None = None


class Advance(Input):
    to: Literal["at_pickup", "picked_up", "delivered"]
    proof: Proof | None = None
    """Required with ``delivered``."""


class HandoverCode(Output):
    code: str
    """Show it to the courier at the door; only then is the delivery complete."""


class Delivery(Output):
    id: uuid.UUID
    merchant_order_id: uuid.UUID
    city_id: str
    status: str
    courier_id: uuid.UUID | None
    emergency: bool
    declines: int
    ready_at: datetime
    mode: str | None
    distance_m: float | None
    kg_co2e: float | None
    baseline_kg_co2e: float | None
    proof_required: str
    frozen_by: uuid.UUID | None
    """The open SOS incident holding this delivery still, if any."""
    eta_at: datetime | None
    """Expected hand-over time at the door, while a courier holds the delivery."""
    coverage_policy_id: str | None
    """The goods-in-transit policy the delivery travels under (none where the city has no cover)."""
    insured_value_minor: int | None
    insured_currency: str | None


class HistoryEntry(Output):
    from_status: str | None
    to_status: str
    actor: str
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime


class SosInput(Input):
    lat: Latitude
    lng: Longitude
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class SosIncident(Output):
    id: uuid.UUID
    city_id: str
    raised_by: uuid.UUID
    raised_as: str
    """``courier`` (every delivery they hold freezes) or ``customer`` (their one delivery does)."""
    courier_id: uuid.UUID | None
    delivery_id: uuid.UUID | None
    lat: float
    lng: float
    note: str | None
    status: str
    raised_at: datetime
    resolved_at: datetime | None
    resolution: str | None


class SosResolution(Input):
    resolution: Reason


class TrackedPosition(Output):
    lat: float
    lng: float
    precise: bool
    """``False`` before pickup: the centre of the courier's ~500 m H3 cell, not the fix itself."""
    at: datetime


class CustomerDelivery(Output, tag_field="type", tag="snapshot"):
    """What the customer sees of their delivery (the GET body, and the first live message)."""

    id: uuid.UUID
    status: str
    emergency: bool
    courier_mode: str | None
    courier_position: TrackedPosition | None
    eta_at: datetime | None
    """When the courier is expected at the door (set on assignment, after pickup, on reroute)."""
    updated_at: datetime


class LiveStatus(Output, tag_field="type", tag="status"):
    delivery_id: uuid.UUID
    status: str
    event: str
    at: datetime


class LiveEta(Output, tag_field="type", tag="eta"):
    delivery_id: uuid.UUID
    eta_at: datetime | None
    at: datetime


class LivePosition(Output, tag_field="type", tag="position"):
    delivery_id: uuid.UUID
    lat: float
    lng: float
    precise: bool
    at: datetime


class LiveOffer(Output, tag_field="type", tag="offer"):
    offer_id: uuid.UUID
    delivery_id: uuid.UUID
    expires_at: datetime
    dropoff_eta_s: float


class LiveOfferClosed(Output, tag_field="type", tag="offer_closed"):
    offer_id: uuid.UUID
    delivery_id: uuid.UUID
    outcome: str
    """``accepted``, ``declined``, ``expired`` or ``withdrawn``."""


class LiveOffers(Output, tag_field="type", tag="offers"):
    """The courier channel's first message: the offers waiting now."""

    pending: list[Offer]


LiveMessage = LiveStatus | LiveEta | LivePosition | LiveOffer | LiveOfferClosed
"""Messages on a live channel after its snapshot (``type`` tells them apart)."""


ReportedProblem = Literal[
    "vehicle_breakdown", "cannot_reach_pickup", "merchant_closed", "unsafe_area", "other"
]


class ProblemReport(Input):
    kind: ReportedProblem
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class Problem(Output):
    id: uuid.UUID
    delivery_id: uuid.UUID
    courier_id: uuid.UUID | None
    kind: str
    reported_by: str
    """``courier``, or ``system`` for a detected route deviation or a courier gone silent."""
    status_at: str
    note: str | None
    rerouted: bool
    """``True`` when the delivery went back to dispatch; picked-up goods stay with support instead."""
    status: str
    reported_at: datetime
    resolved_at: datetime | None


class InsuranceClaim(Output):
    id: uuid.UUID
    delivery_id: uuid.UUID
    incident_id: uuid.UUID
    policy_id: str
    claimed_minor: int
    currency: str
    reason: str
    status: str
    """``pending`` until handed to the insurer, then ``filed`` with its reference."""
    insurer_reference: str | None
    created_at: datetime
    filed_at: datetime | None
