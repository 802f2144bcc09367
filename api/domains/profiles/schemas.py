"""Request and response bodies of the profile API.

Patches follow JSON merge patch (RFC 7396): an absent field is left alone
(``msgspec.UNSET``), ``null`` clears a clearable field, and arrays are replaced
whole. Unknown fields and wrong types are refused by :class:`api.schemas.Input`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from api.schemas import Input, Latitude, Longitude, Output
from nearx.dietary import Allergen, DietaryTag

PriceSensitivity = Literal["low", "medium", "high"]
ConsentPurpose = Literal["marketing", "analytics"]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
LocaleTag = Annotated[str, msgspec.Meta(min_length=2, max_length=35, description="BCP 47 language tag")]
AddressLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=40, examples=["Home"])]
AddressLine = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
MAX_FAVOURITES = 200


# --- input ---------------------------------------------------------------------------------------


class PreferencesPatch(Input):
    eco_first: bool | UnsetType = UNSET
    price_sensitivity: PriceSensitivity | UnsetType = UNSET
    dietary_tags: Annotated[list[DietaryTag], msgspec.Meta(max_length=len(DietaryTag))] | UnsetType = UNSET
    allergens: Annotated[list[Allergen], msgspec.Meta(max_length=len(Allergen))] | UnsetType = UNSET
    favourite_merchant_ids: (
        Annotated[list[uuid.UUID], msgspec.Meta(max_length=MAX_FAVOURITES)] | UnsetType
    ) = UNSET


class ConsentsPatch(Input):
    """``true`` grants, ``false`` withdraws; each change is recorded as evidence."""

    marketing: bool | UnsetType = UNSET
    analytics: bool | UnsetType = UNSET


class MePatch(Input):
    display_name: DisplayName | UnsetType | None = UNSET
    locale: LocaleTag | UnsetType = UNSET
    preferences: PreferencesPatch | UnsetType | None = UNSET
    """``null`` resets every preference to its default."""
    consents: ConsentsPatch | UnsetType = UNSET


class AddressCreate(Input):
    line: AddressLine
    lat: Latitude
    lng: Longitude
    label: AddressLabel | None = None


class AddressPatch(Input):
    """Moving an address needs both ``lat`` and ``lng``: half a point is refused."""

    label: AddressLabel | UnsetType | None = UNSET
    line: AddressLine | UnsetType = UNSET
    lat: Latitude | UnsetType = UNSET
    lng: Longitude | UnsetType = UNSET


# --- output --------------------------------------------------------------------------------------


class Preferences(Output):
    eco_first: bool = False
    price_sensitivity: PriceSensitivity = "medium"
    dietary_tags: list[DietaryTag] = msgspec.field(default_factory=list)
    allergens: list[Allergen] = msgspec.field(default_factory=list)
    favourite_merchant_ids: list[uuid.UUID] = msgspec.field(default_factory=list)


class ConsentState(Output):
    granted: bool = False
    granted_at: datetime | None = None
    """The latest grant, if any."""
    withdrawn_at: datetime | None = None
    """The latest withdrawal, if any."""


class Consents(Output):
    marketing: ConsentState = msgspec.field(default_factory=ConsentState)
    analytics: ConsentState = msgspec.field(default_factory=ConsentState)


class ConsentEvent(Output):
    purpose: ConsentPurpose
    granted: bool
    recorded_at: datetime
    source: str


class Me(Output):
    id: uuid.UUID
    phone: str | None
    email: str | None
    display_name: str | None
    locale: str
    status: str
    roles: list[str]
    preferences: Preferences
    consents: Consents
    created_at: datetime
    updated_at: datetime


class Address(Output):
    id: uuid.UUID
    label: str | None
    line: str | None
    lat: float
    lng: float
    city_id: str
    h3_cells: dict[int, str]
    """The point's H3 cell at each platform resolution (``settings.h3_resolutions``)."""
    created_at: datetime
    updated_at: datetime


class DataExport(Output):
    """Everything NEARX holds about the caller (GDPR Art. 15 and 20, CCPA right to know)."""

    exported_at: datetime
    profile: Me
    consent_history: list[ConsentEvent]
    addresses: list[Address]
    identity: dict[str, Any]
    """Sign-in data (sessions, factors, linked providers, security events) from the identity context."""
    orders: list[dict[str, Any]]
    """Checkouts with their merchant orders and items."""
    bookings: list[dict[str, Any]]
    """Service bookings with their status history."""
    payment_intents: list[dict[str, Any]]
    """Payments, deposits and top-ups, with their refunds."""
    wallets: list[dict[str, Any]]
    """Wallet balance and KYC tier per currency."""
    uploads: list[dict[str, Any]]
    """What the user uploaded (metadata; the files are downloadable by key)."""
    courier: dict[str, Any] | None
    """Courier profile, history, live position, GPS track and deliveries, if the user applied."""
    merchant_applications: list[dict[str, Any]]
    """Merchants and providers the user applied to run, with their approval history."""


class AdminUserView(Output):
    """A user as staff see them. ``pii_minimised`` views (support) mask contact data and omit preferences."""

    id: uuid.UUID
    status: str
    roles: list[str]
    display_name: str | None
    phone: str | None
    email: str | None
    locale: str
    consents: Consents
    preferences: Preferences | None
    address_count: int
    address_cities: list[str]
    pii_minimised: bool
    created_at: datetime
    updated_at: datetime
