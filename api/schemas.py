"""Shared request/response building blocks: strict input structs and validated scalars."""

from __future__ import annotations

from typing import Annotated

import msgspec

Latitude = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0, description="WGS-84 latitude in degrees")]
Longitude = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0, description="WGS-84 longitude in degrees")]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, description="Integer minor units (paisa, cents)")]
CurrencyCode = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code")]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are a 400, not silently dropped."""


class Output(msgspec.Struct, kw_only=True):
    """Base of every response body."""
