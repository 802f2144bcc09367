"""The one interface every payment provider adapter implements.

Services speak only this protocol; adapters translate it to each provider's
documented API. A provider that does not answer in time raises
:class:`GatewayTimeout`: the outcome is then unknown, the intent stays in
``processing`` and reconciliation asks the provider later (``retrieve``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from nearx.money import Money


class GatewayTimeout(Exception):
    """The provider did not answer; whether money moved is unknown until reconciliation."""


class GatewayError(Exception):
    """The provider refused the request itself (bad signature, malformed request, not supported)."""


class ChargeState(StrEnum):
    """What the provider says about a charge, mapped to the intent lifecycle by the service."""

    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    CANCELED = "canceled"
    PENDING = "pending"
    NOT_FOUND = "not_found"


class RefundState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    intent_id: uuid.UUID
    amount: Money
    payment_method: str
    capture: bool
    """Capture immediately (automatic capture) instead of holding the authorization."""
    customer_id: uuid.UUID | None = None
    description: str = ""
    return_url: str = "https://nearx.invalid/payments/return"


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    state: ChargeState
    provider_ref: str | None = None
    amount_captured_minor: int = 0
    decline_code: str | None = None
    action_url: str | None = None
    raw: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    state: RefundState
    provider_ref: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified provider notification: its id (for dedupe) and what it says about a charge."""

    event_id: str
    event_type: str
    provider_ref: str
    outcome: ChargeOutcome | None
    """None for event types that do not change a charge."""


class Gateway(Protocol):
    """A payment provider. Every call carries an idempotency key so a retry never charges twice."""

    name: str
    supports_manual_capture: bool
    authorization_ttl: timedelta

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome: ...

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome: ...

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome: ...

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome: ...

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        """The provider's current truth about a charge (for reconciliation and redirect returns)."""
        ...

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        """The provider's truth about the refund requested with ``refund_key``."""
        ...
