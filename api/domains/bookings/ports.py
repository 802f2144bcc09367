"""What bookings need from payments: collecting the deposit that confirms a held slot.

Payments plugs its implementation in as ``app.state.deposit_gateway``; the
recording default confirms the booking with the deposit ``requested`` (and the
``booking.confirmed`` event carries the amount) for payments to collect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from nearx.db import Connection
from nearx.money import Money


@dataclass(frozen=True, slots=True)
class DepositRequest:
    booking_id: uuid.UUID
    """Our id; use it as the idempotency key towards the payment provider."""
    customer_id: uuid.UUID
    provider_id: uuid.UUID
    city_id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class DepositOutcome:
    status: str
    """``requested`` (collected later), ``succeeded``, or ``failed`` (the booking stays held)."""
    payment_reference: str | None = None


class DepositGateway(Protocol):
    async def collect_deposit(self, conn: Connection, request: DepositRequest) -> DepositOutcome:
        """Called inside the confirmation's transaction; write your rows on ``conn`` to stay atomic."""
        ...


class RecordingDepositGateway:
    async def collect_deposit(self, conn: Connection, request: DepositRequest) -> DepositOutcome:
        return DepositOutcome(status="requested")
