"""What orders need from payments, as interfaces, so orders can land first.

The payments context plugs its implementation in by putting an object with
this shape in ``app.state.refund_gateway``; until then the recording default
leaves each refund ``requested`` in ``order_refunds`` (and the
``order.refund_requested`` event on the outbox) for payments to pick up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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
