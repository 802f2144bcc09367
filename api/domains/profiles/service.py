"""The rules of the profile context: who may see and change what, and what a change records.

Every read and write goes through the caller's own user id, so another user's
data is never reachable (their addresses look absent: 404, not 403). A deleted
account's still-valid access token is refused here with 401, whatever the
middleware knows, because the users row is the authority on account status.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import langcodes
import msgspec
from msgspec import UNSET

from api import idempotency
from api.domains.bookings import repository as bookings_repo
from api.domains.cities import service as cities
from api.domains.couriers import service as couriers
from api.domains.delivery import repository as delivery_repo
from api.domains.identity import service as identity
from api.domains.merchants import repository as merchants_repo
from api.domains.orders import repository as orders_repo
from api.domains.payments import repository as payments_repo
from api.domains.profiles import repository
from api.domains.profiles.schemas import (
    Address,
    AddressCreate,
    AddressPatch,
    AdminUserView,
    ConsentEvent,
    Consents,
    ConsentState,
    DataExport,
    Me,
    MePatch,
    Preferences,
    PreferencesPatch,
)
from api.domains.wallet import repository as wallet_repo
from api.domains.wallet import service as wallet
from api.errors import InvalidInput, NotFound, Unauthenticated
from api.pagination import decode_cursor, encode_cursor
from api.security.principal import Principal, Role
from api.security.revocations import RevocationList
from api.storage import service as storage
from api.storage.store import ObjectStore
from nearx.db import Connection
from nearx.geo import h3_cells
from nearx.ids import new_id
from nearx.outbox import append_event

T = TypeVar("T")
CONSENT_PURPOSES = ("marketing", "analytics")


# --- small validators ----------------------------------------------------------------------------


def normalise_locale(tag: str) -> str:
    """A valid BCP 47 tag in its standard form (``en_gb`` → ``en-GB``), else a 422.

    ``langcodes`` checks the subtags against the IANA registry, which a regular
    expression cannot: ``xx-YY`` is well formed but names no language.
    """
    if not langcodes.tag_is_valid(tag):
        raise InvalidInput(f"locale {tag!r} is not a valid BCP 47 language tag (e.g. 'en', 'ne-NP', 'mr-IN')")
    return str(langcodes.standardize_tag(tag))


def _clean_text(value: str, field: str) -> str:
    cleaned = value.strip()
    if not cleaned or not cleaned.isprintable():
        raise InvalidInput(f"{field} must be non-blank printable text")
    return cleaned


def _unique(values: Iterable[T]) -> list[T]:
    """Drop repeats, keeping the client's order."""
    return list(dict.fromkeys(values))


def _after_uuid(cursor: str) -> uuid.UUID:
    key = decode_cursor(cursor)
    try:
        (value,) = key
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidInput("cursor is not valid") from exc


# --- the caller's profile ------------------------------------------------------------------------


async def _active_user(conn: Connection, user_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    user = await repository.get_user(conn, user_id, lock=lock)
    if user is None or user["status"] == "deleted":
        raise Unauthenticated("this account has been deleted; its tokens no longer work")
    return user


def _consents(rows: Sequence[dict[str, Any]]) -> Consents:
    states = {
        row["purpose"]: ConsentState(
            granted=row["granted"], granted_at=row["granted_at"], withdrawn_at=row["withdrawn_at"]
        )
        for row in rows
    }
    return Consents(**states)


def _preferences(row: dict[str, Any] | None) -> Preferences:
    if row is None:
        return Preferences()
    return Preferences(
        eco_first=row["eco_first"],
        price_sensitivity=row["price_sensitivity"],
        dietary_tags=row["dietary_tags"],
        allergens=row["allergens"],
        favourite_merchant_ids=row["favourite_merchants"],
    )


async def _me(conn: Connection, user: dict[str, Any]) -> Me:
    user_id = user["id"]
    return Me(
        id=user_id,
        phone=user["phone"],
        email=user["email"],
        display_name=user["display_name"],
        locale=user["locale"],
        status=user["status"],
        roles=await repository.get_roles(conn, user_id),
        preferences=_preferences(await repository.get_profile(conn, user_id)),
        consents=_consents(await repository.consent_summary(conn, user_id)),
        created_at=user["created_at"],
        updated_at=user["updated_at"],
    )


async def get_me(conn: Connection, user_id: uuid.UUID) -> Me:
    async with conn.transaction():
        return await _me(conn, await _active_user(conn, user_id))


def _user_changes(patch: MePatch) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if patch.display_name is not UNSET:
        name = patch.display_name
        changes["display_name"] = None if name is None else _clean_text(name, "display_name")
    if patch.locale is not UNSET:
        changes["locale"] = normalise_locale(patch.locale)
    return changes


def _profile_changes(patch: MePatch) -> dict[str, Any]:
    prefs = patch.preferences
    if prefs is UNSET:
        return {}
    if prefs is None:
        defaults = Preferences()
        prefs = PreferencesPatch(
            eco_first=defaults.eco_first,
            price_sensitivity=defaults.price_sensitivity,
            dietary_tags=defaults.dietary_tags,
            allergens=defaults.allergens,
            favourite_merchant_ids=defaults.favourite_merchant_ids,
        )
    changes: dict[str, Any] = {}
    if prefs.eco_first is not UNSET:
        changes["eco_first"] = prefs.eco_first
    if prefs.price_sensitivity is not UNSET:
        changes["price_sensitivity"] = prefs.price_sensitivity
    if prefs.dietary_tags is not UNSET:
        changes["dietary_tags"] = [str(tag) for tag in _unique(prefs.dietary_tags)]
    if prefs.allergens is not UNSET:
        changes["allergens"] = [str(allergen) for allergen in _unique(prefs.allergens)]
    if prefs.favourite_merchant_ids is not UNSET:
        changes["favourite_merchants"] = _unique(prefs.favourite_merchant_ids)
    return changes


async def _set_consent(
    conn: Connection, user_id: uuid.UUID, purpose: str, granted: bool, now: datetime, source: str
) -> None:
    await repository.record_consent(
        conn, event_id=new_id(), user_id=user_id, purpose=purpose, granted=granted, now=now, source=source
    )
    await append_event(
        conn,
        event_type="consent.granted" if granted else "consent.withdrawn",
        aggregate_type="user",
        aggregate_id=user_id,
        payload={"user_id": str(user_id), "purpose": purpose, "source": source, "at": now.isoformat()},
    )


async def patch_me(conn: Connection, user_id: uuid.UUID, patch: MePatch, now: datetime) -> Me:
    """Apply a merge patch. Every field is validated before anything is written.

    Consent changes append evidence rows (only when the state actually changes);
    the outbox event names the changed fields but never carries their values, so
    no PII outlives an erasure in the event log.
    """
    user_changes = _user_changes(patch)
    profile_changes = _profile_changes(patch)
    wanted = {} if patch.consents is UNSET else msgspec.structs.asdict(patch.consents)
    wanted_consents = {purpose: value for purpose, value in wanted.items() if value is not UNSET}
    async with conn.transaction():
        await _active_user(conn, user_id, lock=True)
        if user_changes:
            await repository.update_user(conn, user_id, user_changes, now)
        if profile_changes:
            await repository.upsert_profile(conn, user_id, profile_changes, now)
        current = _consents(await repository.consent_summary(conn, user_id))
        for purpose, granted in wanted_consents.items():
            if getattr(current, purpose).granted != granted:
                await _set_consent(conn, user_id, purpose, granted, now, "user")
        changed = sorted({*user_changes, *profile_changes})
        if changed:
            await append_event(
                conn,
                event_type="profile.updated",
                aggregate_type="user",
                aggregate_id=user_id,
                payload={"user_id": str(user_id), "fields": changed},
            )
        return await _me(conn, await _active_user(conn, user_id))


# --- addresses -----------------------------------------------------------------------------------


def _address(row: dict[str, Any]) -> Address:
    cells = {
        resolution: row[column]
        for resolution, column in repository.H3_COLUMNS.items()
        if row[column] is not None
    }
    return Address(
        id=row["id"],
        label=row["label"],
        line=row["line"],
        lat=row["lat"],
        lng=row["lng"],
        city_id=row["city_id"],
        h3_cells=cells,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _locate(
    conn: Connection, lat: float, lng: float, resolutions: tuple[int, ...]
) -> tuple[str, dict[int, str]]:
    """The serving city and the H3 cells of a point; a point no city serves is a 422."""
    city = await cities.resolve(conn, lat=lat, lng=lng)
    if city is None:
        raise InvalidInput(
            f"the point ({lat}, {lng}) is outside every city NEARX serves; see GET /v1/cities",
            lat=lat,
            lng=lng,
        )
    return city.id, h3_cells(lat, lng, resolutions)


async def _address_event(
    conn: Connection, verb: str, user_id: uuid.UUID, address_id: uuid.UUID, city_id: str
) -> None:
    await append_event(
        conn,
        event_type=f"address.{verb}",
        aggregate_type="address",
        aggregate_id=address_id,
        payload={"address_id": str(address_id), "user_id": str(user_id), "city_id": city_id},
        city_id=city_id,
    )


async def create_address(
    conn: Connection,
    user_id: uuid.UUID,
    body: AddressCreate,
    *,
    resolutions: tuple[int, ...],
    now: datetime,
    idempotency_key: str | None,
) -> Address:
    """Add an address. With an ``Idempotency-Key`` a retried request returns the first answer."""
    label = None if body.label is None else _clean_text(body.label, "label")
    line = _clean_text(body.line, "line")
    scope = f"addresses.create:{user_id}"
    async with conn.transaction():
        await _active_user(conn, user_id, lock=True)
        if idempotency_key is not None:
            stored = await idempotency.claim(
                conn, scope=scope, key=idempotency_key, fingerprint=idempotency.request_fingerprint(body)
            )
            if stored is not None:
                return msgspec.convert(stored.body, Address, strict=False)
        city_id, cells = await _locate(conn, body.lat, body.lng, resolutions)
        row = await repository.insert_address(
            conn,
            address_id=new_id(),
            user_id=user_id,
            city_id=city_id,
            label=label,
            line=line,
            lat=body.lat,
            lng=body.lng,
            cells=cells,
            now=now,
        )
        address = _address(row)
        await _address_event(conn, "created", user_id, address.id, city_id)
        if idempotency_key is not None:
            await idempotency.remember(conn, scope=scope, key=idempotency_key, status=201, body=address)
        return address


async def list_addresses(
    conn: Connection, user_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Address], str | None]:
    after = _after_uuid(cursor) if cursor else None
    async with conn.transaction():
        await _active_user(conn, user_id)
        rows = await repository.list_addresses(conn, user_id=user_id, after_id=after, limit=limit + 1)
    addresses = [_address(row) for row in rows[:limit]]
    next_cursor = encode_cursor(str(addresses[-1].id)) if len(rows) > limit else None
    return addresses, next_cursor


def _not_found(address_id: uuid.UUID) -> NotFound:
    return NotFound(f"address {address_id} not found")


async def get_address(conn: Connection, user_id: uuid.UUID, address_id: uuid.UUID) -> Address:
    async with conn.transaction():
        await _active_user(conn, user_id)
        row = await repository.get_address(conn, user_id=user_id, address_id=address_id)
    if row is None:
        raise _not_found(address_id)
    return _address(row)


async def patch_address(
    conn: Connection,
    user_id: uuid.UUID,
    address_id: uuid.UUID,
    patch: AddressPatch,
    *,
    resolutions: tuple[int, ...],
    now: datetime,
) -> Address:
    if (patch.lat is UNSET) != (patch.lng is UNSET):
        raise InvalidInput("lat and lng change together: send both or neither")
    label = patch.label if patch.label is UNSET or patch.label is None else _clean_text(patch.label, "label")
    line = patch.line if patch.line is UNSET else _clean_text(patch.line, "line")
    async with conn.transaction():
        await _active_user(conn, user_id)
        row = await repository.get_address(conn, user_id=user_id, address_id=address_id, lock=True)
        if row is None:
            raise _not_found(address_id)
        lat = row["lat"] if patch.lat is UNSET else patch.lat
        lng = row["lng"] if patch.lng is UNSET else patch.lng
        city_id, cells = await _locate(conn, lat, lng, resolutions)
        updated = await repository.update_address(
            conn,
            address_id=address_id,
            label=row["label"] if label is UNSET else label,
            line=row["line"] if line is UNSET else line,
            lat=lat,
            lng=lng,
            city_id=city_id,
            cells=cells,
            now=now,
        )
        await _address_event(conn, "updated", user_id, address_id, city_id)
    return _address(updated)


async def delete_address(conn: Connection, user_id: uuid.UUID, address_id: uuid.UUID) -> None:
    async with conn.transaction():
        await _active_user(conn, user_id)
        row = await repository.delete_address(conn, user_id=user_id, address_id=address_id)
        if row is None:
            raise _not_found(address_id)
        await _address_event(conn, "deleted", user_id, address_id, row["city_id"])


# --- data rights ---------------------------------------------------------------------------------


async def export_data(conn: Connection, user_id: uuid.UUID, now: datetime) -> DataExport:
    """All the caller's data, read in one transaction so the parts agree with each other.

    Each context reads its own tables (its repository or service); this composes them.
    """
    async with conn.transaction():
        user = await _active_user(conn, user_id)
        history = await repository.consent_history(conn, user_id)
        addresses = await repository.list_addresses(conn, user_id=user_id, after_id=None, limit=None)
        wallets = [
            await wallet.view(conn, user_id, c) for c in await wallet_repo.currencies_of(conn, user_id)
        ]
        return DataExport(
            exported_at=now,
            profile=await _me(conn, user),
            consent_history=[msgspec.convert(row, ConsentEvent) for row in history],
            addresses=[_address(row) for row in addresses],
            identity=msgspec.to_builtins(await identity.export_identity(conn, user_id)),
            orders=await orders_repo.orders_of_customer(conn, user_id),
            bookings=await bookings_repo.bookings_of_customer(conn, user_id),
            payment_intents=await payments_repo.intents_of_customer(conn, user_id),
            wallets=msgspec.to_builtins(wallets),
            uploads=msgspec.to_builtins(await storage.uploads_of(conn, user_id)),
            courier=await couriers.export_courier(conn, user_id),
            merchant_applications=await merchants_repo.applications_of(conn, user_id),
        )


async def erase_account(
    conn: Connection,
    store: ObjectStore,
    user_id: uuid.UUID,
    now: datetime,
    revocations: RevocationList | None = None,
) -> None:
    """Erase the account's PII but keep the users row, so orders and ledgers stay whole.

    Contact data and name are nulled, preferences reset, addresses and the exact delivery
    points of orders and deliveries coarsened to about 1 km, a courier's live position
    forgotten and track coarsened (an online courier must go offline first: 409), uploaded
    documents deleted (the files after the commit, so a rollback never loses one), granted
    consents withdrawn (the history stays as evidence), every session revoked, and
    ``user.deleted`` written. Amounts, payments, wallets and the ledger are financial
    records and stay. Erasing an erased account does nothing. The revoked sessions join this
    worker's ``revocations`` after the commit, so its tokens stop here at once.
    """
    async with conn.transaction():
        user = await repository.get_user(conn, user_id, lock=True)
        if user is None:
            raise Unauthenticated("no such account")
        if user["status"] == "deleted":
            return
        current = _consents(await repository.consent_summary(conn, user_id))
        for purpose in CONSENT_PURPOSES:
            if getattr(current, purpose).granted:
                await _set_consent(conn, user_id, purpose, False, now, "account_deletion")
        erased_addresses = await repository.erase_addresses(conn, user_id, now)
        await orders_repo.coarsen_delivery_points(conn, user_id)
        await delivery_repo.coarsen_customer_points(conn, user_id)
        await couriers.erase_courier(conn, user_id)
        documents = await storage.forget_documents(conn, user_id)
        await merchants_repo.forget_documents(conn, user_id)
        await identity.erase_identity(conn, user_id)  # before erase_user: it needs phone and email
        await repository.erase_user(conn, user_id, now)
        revoked = await identity.revoke_all_sessions(conn, user_id, reason="account_deleted")
        await append_event(
            conn,
            event_type="user.deleted",
            aggregate_type="user",
            aggregate_id=user_id,
            payload={
                "user_id": str(user_id),
                "deleted_at": now.isoformat(),
                "addresses": erased_addresses,
                "documents": len(documents),
            },
        )
    if revocations is not None:
        revocations.note(revoked, now)
    await storage.delete_objects(store, documents)


# --- staff view ----------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str | None:
    """Keep the country prefix's ``+`` and the last 3 digits: enough to confirm "ending in 678"."""
    if phone is None:
        return None
    return phone[:1] + "*" * max(len(phone) - 4, 0) + phone[-3:]


def mask_email(email: str | None) -> str | None:
    """Keep the first character and the domain: enough to confirm "a***@example.com"."""
    if email is None:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


async def admin_view(conn: Connection, viewer: Principal, user_id: uuid.UUID) -> AdminUserView:
    """A user as staff see them; support staff get a PII-minimised view.

    Support answers "why did I get this email / which account is this": it needs
    the name to address the customer, masked contact data to confirm identity,
    consents and status, and which cities they have addresses in. It does not
    need full phone or email, address lines, or dietary and allergen preferences
    (health-related data, GDPR Art. 9). Admins see contact data and preferences.
    Neither sees address lines or points: no staff task needs a home location.
    """
    minimised = Role.ADMIN not in viewer.roles
    async with conn.transaction():
        user = await repository.get_user(conn, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        addresses = await repository.list_addresses(conn, user_id=user_id, after_id=None, limit=None)
        return AdminUserView(
            id=user["id"],
            status=user["status"],
            roles=await repository.get_roles(conn, user_id),
            display_name=user["display_name"],
            phone=mask_phone(user["phone"]) if minimised else user["phone"],
            email=mask_email(user["email"]) if minimised else user["email"],
            locale=user["locale"],
            consents=_consents(await repository.consent_summary(conn, user_id)),
            preferences=None if minimised else _preferences(await repository.get_profile(conn, user_id)),
            address_count=len(addresses),
            address_cities=sorted({row["city_id"] for row in addresses}),
            pii_minimised=minimised,
            created_at=user["created_at"],
            updated_at=user["updated_at"],
        )
