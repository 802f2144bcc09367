"""What orders need from other contexts, as interfaces, so orders can land first.

Refunds: the payments context plugs its implementation in by putting an object with
this shape in ``app.state.refund_gateway``; until then the recording default
leaves each refund ``requested`` in ``order_refunds`` (and the
``order.refund_requested`` event on the outbox) for payments to pick up.

Scoring at checkout: ``app.state.checkout_risk`` (a :class:`CheckoutRiskScorer`) and
``app.state.eta_promiser`` (an :class:`EtaPromiser`), both backed by the serving layer
(``api/domains/scoring``). Without them a checkout is not scored and carries no promise.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nearx.db import Connection
from nearx.money import Money


@dataclass(frozen=True, slots=True)
class RefundRequest:
    refund_id: uuid.UUID
    """Our id; use it as the idempotency key towards the payment provider."""
    merchant_order_id: uuid.UUID
    parent_order_id: uuid.UUID
    customer_id: uuid.UUID
    merchant_id: uuid.UUID
    city_id: str
    amount: Money
    reason: str


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: str
    """``requested`` (will settle later), ``succeeded`` or ``failed``."""
    payment_reference: str | None = None


class RefundGateway(Protocol):
    async def request_refund(self, conn: Connection, request: RefundRequest) -> RefundOutcome:
        """Called inside the refund's transaction: write your own rows on ``conn`` to stay atomic."""
        ...


class RecordingRefundGateway:
    """The default: the refund stays recorded as requested for payments to settle."""

    async def request_refund(self, conn: Connection, request: RefundRequest) -> RefundOutcome:
        return RefundOutcome(status="requested")


@dataclass(frozen=True, slots=True)
class CheckoutRisk:
    """What checkout knows about an attempt, for the fraud scorer; ``None`` is unknown."""

    checkout_id: uuid.UUID
    customer_id: uuid.UUID
    merchant_id: uuid.UUID
    """The merchant with the largest share of the cart (its category and volume are scored)."""
    category: str
    total: Money
    discount_minor: int
    item_count: int
    promo_code: str | None
    payment_method: str | None
    new_device: bool | None
    """No earlier sign-in of this customer from the session's device (user agent)."""
    device_orders_1h: int
    """Checkouts from this device in the last hour, this one included."""
    dropoff_from_home_m: float | None
    prior_orders: int
    """The customer's earlier checkouts (a history lowers the rules' risk)."""


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    decision: str
    """``approve``, ``step_up`` or ``review``."""
    score: float
    reasons: tuple[str, ...]
    scorer: str
    degraded: str | None = None
    """Why the model did not answer and the rules did (``no_model``, ``over_budget``...)."""


class CheckoutRiskScorer(Protocol):
    async def assess_checkout(self, risk: CheckoutRisk) -> RiskVerdict: ...


@dataclass(frozen=True, slots=True)
class DeliveryLeg:
    """One merchant order's trip, for its ETA promise."""

    merchant_id: uuid.UUID
    category: str
    h3_r7: str
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    prep_s: float


@dataclass(frozen=True, slots=True)
class PromisedEta:
    p50_s: int
    p90_s: int
    model: str | None
    """``nearx-eta@<version>``; ``None`` when the routing heuristic answered."""
    degraded: str | None


@dataclass(frozen=True, slots=True)
class CityClock:
    city_id: str
    timezone: str
    country: str


@dataclass(frozen=True, slots=True)
class LiveLeg:
    """What is left of a picked-up order's trip: from the courier's position to the door."""

    position: tuple[float, float]
    dropoff: tuple[float, float]
    mode: str


class EtaPromiser(Protocol):
    async def promise(
        self, city: CityClock, legs: Sequence[DeliveryLeg], at: datetime
    ) -> list[PromisedEta]: ...

    async def remaining(self, city: CityClock, legs: Sequence[LiveLeg], at: datetime) -> list[PromisedEta]:
        """Seconds from ``at`` to the door (P50, P90) for each leg."""
        ...
