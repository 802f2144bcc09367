"""Request and response bodies of the payments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.schemas import AmountMinor, CurrencyCode, Input, Output

PositiveAmount = Annotated[
    int, msgspec.Meta(gt=0, description="Integer minor units (paisa, cents), above zero")
]


class CreateIntentIn(Input):
    amount_minor: PositiveAmount
    currency: CurrencyCode
    provider: str = "sandbox"
    capture_method: Literal["automatic", "manual"] = "manual"
    purpose: Literal["payment", "deposit"] = "payment"
    payment_method: str | None = None
    order_id: uuid.UUID | None = None
    city_id: str | None = None


class ConfirmIn(Input):
    payment_method: str | None = None


class CaptureIn(Input):
    amount_minor: PositiveAmount | None = None
    """Defaults to the whole authorization; the uncaptured rest is released."""
    currency: CurrencyCode | None = None


class CancelIn(Input):
    reason: str = "requested_by_customer"


class RefundIn(Input):
    amount_minor: PositiveAmount
    currency: CurrencyCode
    bearer: Literal["proportional", "merchant", "platform"] = "proportional"
    reason: str | None = None


class IntentOut(Output):
    id: uuid.UUID
    status: str
    provider: str
    purpose: str
    capture_method: str
    amount_minor: int
    currency: str
    amount_captured: int
    amount_refunded: int
    customer_id: uuid.UUID | None
    order_id: uuid.UUID | None
    last_error: str | None
    action_url: str | None
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> IntentOut:
        return cls(**{field: row[field] for field in cls.__struct_fields__})


class RefundOut(Output):
    id: uuid.UUID
    intent_id: uuid.UUID
    status: str
    amount_minor: AmountMinor
    currency: str
    bearer: str
    failure_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> RefundOut:
        return cls(**{field: row[field] for field in cls.__struct_fields__})
