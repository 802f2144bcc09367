"""Request and response bodies of ``/v1/match``."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Latitude, Longitude, Output

MAX_LIMIT = 50
DEFAULT_LIMIT = 20
MAX_RADIUS_M = 25_000
DEFAULT_RADIUS_M = 5_000

Category = Annotated[str, msgspec.Meta(pattern="^[a-z_]{2,40}$")]
Query = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
Radius = Annotated[int, msgspec.Meta(ge=100, le=MAX_RADIUS_M)]
Hour = Annotated[int, msgspec.Meta(ge=0, le=23)]
PriceSensitivity = Literal["low", "medium", "high"]


class MatchContext(Input, kw_only=True):
    """Richer context than the query string carries (POST /v1/match)."""

    lat: Latitude
    lng: Longitude
    category: Category | None = None
    q: Query | None = None
    limit: Limit = DEFAULT_LIMIT
    radius_m: Radius = DEFAULT_RADIUS_M
    rain: bool = False
    eco_first: bool | None = None
    """Overrides the profile's preference for this request."""
    price_sensitivity: PriceSensitivity | None = None
    exclude_merchants: Annotated[list[uuid.UUID], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )


class Eta(Output):
    p50_s: int
    p90_s: int


class GreenDelivery(Output):
    available: bool
    mode: str
    kg_co2e: float
    saving_kg_co2e: float
    p_on_time: float


class MatchResult(Output):
    merchant_id: uuid.UUID
    name: str
    category: str
    kind: str
    position: int
    score: float
    distance_m: int
    price_level: int
    rating: float | None
    eta: Eta
    green_delivery: GreenDelivery
    reason_codes: list[str]


class Scoring(Output):
    """Who ranked the list and who promised the times: model name and version, or ``degraded``."""

    model: str | None
    model_version: str | None
    degraded: bool
    degraded_reason: str | None
    eta_model: str | None
    eta_model_version: str | None
    eta_degraded_reason: str | None


class MatchPage(Output):
    match_id: uuid.UUID
    city_id: str | None
    results: list[MatchResult]
    scoring: Scoring


class ClickInput(Input, kw_only=True):
    merchant_id: uuid.UUID


class ClickRecorded(Output):
    match_id: uuid.UUID
    merchant_id: uuid.UUID
    position: int
