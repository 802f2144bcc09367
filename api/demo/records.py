"""What the demo seeder takes: plain records of a city's merchants, providers, couriers and a customer.

Each carries the ``source_id`` of the entity it describes (the simulator's id), which is what
makes seeding idempotent: an entity already recorded in ``demo_entities`` is never seeded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class DemoMerchant:
    source_id: str
    name: str
    category: str
    lat: float
    lng: float
    prep_time_min: int
    item_price_minor: int
    """A typical item's price at this merchant, in the city's minor units; the menu scales from it."""


@dataclass(frozen=True, slots=True)
class DemoProvider:
    source_id: str
    name: str
    skills: tuple[str, ...]
    lat: float
    lng: float
    hourly_rate_minor: int
    work_days: tuple[int, ...]
    """ISO weekdays counted from 0 = Monday, as the platform's calendars count them."""
    start_hour: int
    end_hour: int


@dataclass(frozen=True, slots=True)
class DemoCourier:
    source_id: str
    mode: str
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    source_id: str
    phone: str
    """E.164; the developer signs in with it (the code is in ``nearx sandbox messages``)."""
    lat: float
    lng: float
    eco_first: bool
    price_sensitivity: Literal["low", "medium", "high"]
    favourite_source_id: str | None


@dataclass(frozen=True, slots=True)
class DemoCity:
    city_id: str
    merchants: tuple[DemoMerchant, ...]
    providers: tuple[DemoProvider, ...]
    couriers: tuple[DemoCourier, ...]
    customer: DemoCustomer
