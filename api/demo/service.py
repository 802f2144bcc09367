"""Seed a demo city into the live database through the platform's services, idempotently.

Every entity goes through the same service calls a person would make through the API: an owner
applies, the demo admin approves, the owner sets hours and lists products with stock; a provider
lists services and keeps a calendar; a courier applies, is approved, goes online and reports a
position; the demo customer gets a profile and a home address. So seeded data obeys every rule
and emits every event live data would.

Each entity is seeded in one transaction together with its ``demo_entities`` row: a second run
skips it, and a run stopped half-way resumes with the next one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import time
from functools import partial
from typing import Any, TypeVar

import msgspec

from api.demo import repository
from api.demo.menus import menu_for
from api.demo.records import DemoCity, DemoCourier, DemoCustomer, DemoMerchant, DemoProvider
from api.domains.bookings import service as bookings
from api.domains.bookings.schemas import CalendarInput
from api.domains.catalog import service as catalog
from api.domains.catalog.schemas import ProductInput, ServiceInput
from api.domains.cities.service import resolve as resolve_city
from api.domains.couriers import service as couriers
from api.domains.couriers.schemas import CourierApplication, LocationBatch, ShiftChange
from api.domains.couriers.schemas import Decision as CourierDecision
from api.domains.identity import service as identity
from api.domains.identity.audit import RequestContext
from api.domains.merchants import service as merchants
from api.domains.merchants.schemas import Decision, HoursInput, MerchantApplication
from api.domains.profiles import service as profiles
from api.domains.profiles.schemas import AddressCreate, MePatch
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.settings import Settings

T = TypeVar("T")
SEEDER = RequestContext(user_agent="nearx demo seed")
ALL_DAY = (time(0, 0), time(23, 59, 59))
"""Demo shops keep all-day hours on every weekday, so the demo answers at any local time."""
DOCUMENT_URL = "https://demo.example.com/documents/{source_id}/{kind}.pdf"
APPROVED = "demo city: seeded by nearx"


@dataclass
class SeedReport:
    created: Counter[str] = field(default_factory=Counter)
    """Entities seeded by this run, by kind."""
    existing: int = 0
    """Entities already seeded by an earlier run (left as they are)."""
    outside: list[str] = field(default_factory=list)
    """Source ids whose point lies outside every city's boundary (not seeded)."""

    def summary(self) -> str:
        made = ", ".join(f"{n} {kind}(s)" for kind, n in sorted(self.created.items())) or "nothing new"
        tail = f"; {len(self.outside)} outside the city boundary" if self.outside else ""
        return f"seeded {made}; {self.existing} already there{tail}"


def _input(body_type: type[T], /, **fields: Any) -> T:
    """Build a request body the way the API decodes one, so every constraint is checked."""
    return msgspec.convert(fields, body_type)


def _acting_as(user_id: uuid.UUID, *roles: Role) -> Principal:
    """The seeder acts in each user's name, as their own signed-in session would (an admin's
    with the second factor that admin routes demand)."""
    return Principal(user_id=user_id, roles=frozenset(roles), session_id=new_id(), mfa=Role.ADMIN in roles)


def demo_email(city_id: str, source_id: str) -> str:
    return f"{source_id}@{city_id}.demo.example.com"


async def _user(conn: Connection, admin: Principal | None, email: str, role: Role) -> uuid.UUID:
    user_id = await identity.find_or_register(conn, email=email, context=SEEDER)
    granter = admin or _acting_as(user_id, Role.ADMIN)  # the demo admin grants itself its role
    await identity.grant_role(conn, granter, user_id, role, context=SEEDER)
    return user_id


async def _admin(conn: Connection, city_id: str, known: dict[str, uuid.UUID]) -> Principal:
    source_id = "admin"
    if source_id not in known:
        async with conn.transaction():
            user_id = await _user(conn, None, demo_email(city_id, source_id), Role.ADMIN)
            await repository.remember(conn, city_id, source_id, "admin", user_id)
        known[source_id] = user_id
    return _acting_as(known[source_id], Role.ADMIN)


async def _merchant(
    conn: Connection, settings: Settings, city_id: str, admin: Principal, record: DemoMerchant
) -> uuid.UUID:
    owner = _acting_as(
        await _user(conn, admin, demo_email(city_id, record.source_id), Role.MERCHANT), Role.MERCHANT
    )
    application = _input(
        MerchantApplication,
        kind="merchant",
        category=record.category,
        name=record.name,
        lat=record.lat,
        lng=record.lng,
        prep_time_min=record.prep_time_min,
    )
    merchant = await merchants.apply(conn, owner, application, settings)
    await merchants.decide(conn, admin, merchant.id, _input(Decision, decision="approve", reason=APPROVED))
    hours = [{"weekday": day, "opens": ALL_DAY[0], "closes": ALL_DAY[1]} for day in range(7)]
    await merchants.set_hours(conn, owner, merchant.id, _input(HoursInput, hours=hours))
    for number, item in enumerate(menu_for(record.category), start=1):
        price = max(100, round(record.item_price_minor * item.price_factor / 100) * 100)  # whole major units
        variant = {"sku": f"{record.source_id}-{number}", "name": "regular", "price_minor": price}
        product = _input(
            ProductInput,
            name=item.name,
            category=record.category,
            variants=[{**variant, "initial_stock": item.stock}],
            allergens=list(item.allergens),
            dietary_tags=list(item.dietary_tags),
        )
        await catalog.create_product(conn, owner, merchant.id, product)
    return merchant.id


async def _provider(
    conn: Connection, settings: Settings, city_id: str, admin: Principal, record: DemoProvider
) -> uuid.UUID:
    owner = _acting_as(
        await _user(conn, admin, demo_email(city_id, record.source_id), Role.PROVIDER), Role.PROVIDER
    )
    application = _input(
        MerchantApplication,
        kind="provider",
        category=record.skills[0],
        name=record.name,
        lat=record.lat,
        lng=record.lng,
    )
    provider = await merchants.apply(conn, owner, application, settings)
    await merchants.decide(conn, admin, provider.id, _input(Decision, decision="approve", reason=APPROVED))
    for skill in record.skills:
        listing = _input(
            ServiceInput,
            name=f"{skill.replace('_', ' ').capitalize()} visit (1 hour)",
            duration_min=60,
            price_minor=record.hourly_rate_minor,
            deposit_minor=record.hourly_rate_minor // 5,
            required_skills=[skill],
        )
        await catalog.create_service(conn, owner, provider.id, listing)
    windows = [
        {"weekday": day, "starts": time(record.start_hour), "ends": time(record.end_hour)}
        for day in record.work_days
    ]
    calendar = _input(CalendarInput, availability=windows, travel_min=15)
    await bookings.set_calendar(conn, owner, provider.id, calendar)
    return provider.id


async def _courier(conn: Connection, city_id: str, admin: Principal, record: DemoCourier) -> uuid.UUID:
    user_id = await identity.find_or_register(
        conn, email=demo_email(city_id, record.source_id), context=SEEDER
    )
    rider = _acting_as(user_id, Role.CUSTOMER)
    documents = [
        {"kind": kind, "url": DOCUMENT_URL.format(source_id=record.source_id, kind=kind)}
        for kind in ("id_card", "photo")
    ]
    application = _input(
        CourierApplication,
        city_id=city_id,
        mode=record.mode,
        bag_slots=2,
        max_weight_g=8000,
        documents=documents,
    )
    _, body = await couriers.apply(conn, rider, application, key=f"demo-seed:{record.source_id}")
    courier_id = uuid.UUID(str(body["id"]))
    decision = _input(CourierDecision, decision="approve", reason=APPROVED)
    await couriers.decide(conn, admin, courier_id, decision, context=SEEDER)  # grants the courier role
    rider = _acting_as(user_id, Role.COURIER)
    await couriers.change_shift(conn, rider, _input(ShiftChange, shift="online", reason="demo shift"))
    fix = {"at": utc_now(), "lat": record.lat, "lng": record.lng, "accuracy_m": 8.0, "speed_mps": 0.0}
    await couriers.ingest_locations(conn, rider, _input(LocationBatch, fixes=[fix]))
    return courier_id


async def _customer(
    conn: Connection, settings: Settings, record: DemoCustomer, known: dict[str, uuid.UUID]
) -> uuid.UUID:
    user_id = await identity.find_or_register(conn, phone=record.phone, context=SEEDER)
    favourite = known.get(record.favourite_source_id or "")
    preferences = {
        "eco_first": record.eco_first,
        "price_sensitivity": record.price_sensitivity,
        "favourite_merchant_ids": [favourite] if favourite else [],
    }
    now = utc_now()
    patch = _input(MePatch, display_name="Demo customer", preferences=preferences)
    await profiles.patch_me(conn, user_id, patch, now)
    home = _input(AddressCreate, line="Home (demo)", lat=record.lat, lng=record.lng, label="home")
    await profiles.create_address(
        conn, user_id, home, resolutions=settings.h3_resolutions, now=now, idempotency_key=None
    )
    return user_id


async def _once(
    conn: Connection,
    city_id: str,
    known: dict[str, uuid.UUID],
    report: SeedReport,
    kind: str,
    record: DemoMerchant | DemoProvider | DemoCourier | DemoCustomer,
    seed: Callable[[], Awaitable[uuid.UUID]],
) -> None:
    """Seed one entity and its ``demo_entities`` row in one transaction, unless it is already there."""
    if record.source_id in known:
        return
    if await resolve_city(conn, lat=record.lat, lng=record.lng) is None:
        report.outside.append(record.source_id)
        return
    async with conn.transaction():
        platform_id = await seed()
        await repository.remember(conn, city_id, record.source_id, kind, platform_id)
    known[record.source_id] = platform_id
    report.created[kind] += 1


def _silent(_: str) -> None:
    """The default progress callback: say nothing."""


async def seed_city(
    conn: Connection, settings: Settings, city: DemoCity, progress: Callable[[str], None] = _silent
) -> SeedReport:
    """Seed ``city`` (``conn`` in autocommit; each entity commits on its own); a rerun adds nothing.
    ``progress`` hears a line after each kind of entity."""
    report = SeedReport()
    known = await repository.seeded(conn, city.city_id)
    report.existing = len(known)
    admin = await _admin(conn, city.city_id, known)
    once = partial(_once, conn, city.city_id, known, report)
    for merchant in city.merchants:
        await once("merchant", merchant, partial(_merchant, conn, settings, city.city_id, admin, merchant))
    progress(f"merchants: {report.created['merchant']} new")
    for provider in city.providers:
        await once("provider", provider, partial(_provider, conn, settings, city.city_id, admin, provider))
    progress(f"service providers: {report.created['provider']} new")
    for courier in city.couriers:
        await once("courier", courier, partial(_courier, conn, city.city_id, admin, courier))
    progress(f"couriers: {report.created['courier']} new")
    await once("customer", city.customer, partial(_customer, conn, settings, city.customer, known))
    return report
