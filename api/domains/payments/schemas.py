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


class ReviewOut(Output):
    """A payment held for a manual review, with what the scorer saw in it."""

    intent: IntentOut
    scorer: str
    score: float
    reasons: list[str]
    assessed_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> ReviewOut:
        return cls(
            intent=IntentOut.of(row),
            scorer=row["scorer"],
            score=row["score"],
            reasons=list(row["reasons"]),
            assessed_at=row["assessed_at"],
        )


class ReviewDecisionIn(Input):
    decision: Literal["approve", "reject"]


class PayoutRunIn(Input):
    currency: CurrencyCode
    period_end: datetime | None = None
    """Settle entries posted before this instant; defaults to the start of the current UTC day."""
    min_payout_minor: AmountMinor | None = None
    """Defaults to ``NEARX_PAYOUT_MIN_MINOR``."""


class PayoutOut(Output):
    id: uuid.UUID
    party_kind: str
    party_id: uuid.UUID
    amount_minor: int
    currency: str
    status: str
    entry_id: uuid.UUID

    @classmethod
    def of(cls, row: dict[str, Any]) -> PayoutOut:
        return cls(**{field: row[field] for field in cls.__struct_fields__})


class PayoutBatchOut(Output):
    id: uuid.UUID
    currency: str
    period_end: datetime
    min_payout_minor: int
    created_at: datetime
    payouts: list[PayoutOut]

    @classmethod
    def of(cls, batch: dict[str, Any], payouts: list[dict[str, Any]]) -> PayoutBatchOut:
        return cls(
            id=batch["id"],
            currency=batch["currency"],
            period_end=batch["period_end"],
            min_payout_minor=batch["min_payout_minor"],
            created_at=batch["created_at"],
            payouts=[PayoutOut.of(row) for row in payouts],
        )


class PayoutRunOut(Output):
    batch: PayoutBatchOut
    created: bool
    """False when this period had already been run: the existing batch, nothing paid again."""
    held: int
    """Parties skipped because of an open hold (a dispute); their money stays on the payable."""
    below_minimum: int


class PayoutBatchSummary(Output):
    id: uuid.UUID
    currency: str
    period_end: datetime
    min_payout_minor: int
    payouts: int
    total_minor: int
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> PayoutBatchSummary:
        return cls(**{field: row[field] for field in cls.__struct_fields__})


class DisputeIn(Input):
    party_kind: Literal["merchant", "courier"]
    party_id: uuid.UUID
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    intent_id: uuid.UUID | None = None


class DisputeResolveIn(Input):
    resolution: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class DisputeOut(Output):
    id: uuid.UUID
    party_kind: str
    party_id: uuid.UUID
    intent_id: uuid.UUID | None
    status: str
    reason: str
    resolution: str | None
    opened_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> DisputeOut:
        return cls(**{field: row[field] for field in cls.__struct_fields__})
