"""The interface the marketplace calls: capture an order with its split, refund, hold deposits.

Two shapes, because the callers have two needs:

* plain async functions (:func:`capture_for_order`, :func:`refund`,
  :func:`hold_deposit`, :func:`release_deposit`, :func:`capture_deposit`)
  that talk to providers and so run *outside* any caller transaction;
* adapters for the ports that orders and bookings already define
  (:class:`OrderRefunds` for ``orders.ports.RefundGateway``,
  :class:`BookingDeposits` for ``bookings.ports.DepositGateway``), which are
  called *inside* the caller's transaction and therefore only write rows:
  a refund is reserved as ``requested`` (sent by ``nearx payments reconcile``),
  a deposit becomes a manual-capture intent the customer confirms with a card.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from api.domains.bookings.ports import DepositOutcome, DepositRequest
from api.domains.orders.ports import RefundOutcome, RefundRequest
from api.domains.payments import repository, service
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.settlement import OrderSplit, RefundBearer, order_legs
from api.errors import InvalidInput
from nearx.db import Connection
from nearx.ids import new_id
from nearx.money import Money

Row = dict[str, Any]


async def capture_for_order(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    split: OrderSplit,
    *,
    actor: str = "marketplace",
) -> Row:
    """Capture an order's authorization and credit merchant, courier, platform and tax in one entry.

    The capture amount is the split's total (items + delivery fee + tax); the
    commission is the merchant category's rate in basis points.
    """
    row = await service.get_intent(conn, intent_id)
    commission_bp = await repository.commission_bp(conn, split.merchant_category)
    try:
        legs = order_legs(split, commission_bp=commission_bp, currency=row["currency"])
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    return await service.capture(
        conn,
        gateways,
        intent_id,
        amount=service.money(split.total_minor, row["currency"]),
        actor=actor,
        settlement=legs,
    )


async def refund(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    amount: Money,
    *,
    bearer: RefundBearer,
    idempotency_key: str,
    reason: str | None = None,
    actor: str = "marketplace",
) -> Row:
    """Refund now (calls the provider); ``bearer`` says whose legs pay for it."""
    return await service.refund(
        conn,
        gateways,
        intent_id,
        amount=amount,
        bearer=bearer,
        request_key=idempotency_key,
        actor=actor,
        reason=reason,
    )


async def hold_deposit(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    *,
    customer_id: uuid.UUID,
    amount: Money,
    booking_id: uuid.UUID,
    payment_method: str,
    provider: str = "sandbox",
    city_id: str | None = None,
) -> Row:
    """A pre-authorization hold (booking deposit, try-before-buy): authorized now, captured or
    released later."""
    created = await service.create_intent(
        conn,
        gateways,
        service.NewIntent(
            amount=amount,
            provider=provider,
            purpose="deposit",
            capture_method="manual",
            customer_id=customer_id,
            order_id=booking_id,
            city_id=city_id,
        ),
        actor=f"user:{customer_id}",
    )
    return await service.confirm(
        conn, gateways, created["id"], payment_method=payment_method, actor=f"user:{customer_id}"
    )


async def capture_deposit(
    conn: Connection, gateways: Mapping[str, Gateway], intent_id: uuid.UUID, amount: Money | None = None
) -> Row:
    """Keep all or part of a held deposit (a no-show, a kept try-before-buy item)."""
    return await service.capture(conn, gateways, intent_id, amount=amount, actor="marketplace")


async def release_deposit(conn: Connection, gateways: Mapping[str, Gateway], intent_id: uuid.UUID) -> Row:
    return await service.cancel(conn, gateways, intent_id, actor="marketplace", reason="deposit_released")


class OrderRefunds:
    """``orders.ports.RefundGateway``: reserves the refund in the order's transaction.

    The merchant bears an order refund by default (tax is reversed pro rata);
    the refund is sent to the provider by the dispatcher in reconciliation.
    """

    def __init__(self, bearer: RefundBearer = "merchant") -> None:
        self._bearer = bearer

    async def request_refund(self, conn: Connection, request: RefundRequest) -> RefundOutcome:
        row = await repository.captured_intent_for_order(
            conn, (request.merchant_order_id, request.parent_order_id)
        )
        if row is None:
            return RefundOutcome(status="failed")
        refund_row = await service.reserve_refund(
            conn,
            row,
            amount=request.amount,
            bearer=self._bearer,
            request_key=str(request.refund_id),
            reason=request.reason,
            status="requested",
        )
        return RefundOutcome(status="requested", payment_reference=str(refund_row["id"]))


class BookingDeposits:
    """``bookings.ports.DepositGateway``: creates the deposit's manual-capture intent in the
    booking's transaction; the customer then confirms it (``POST /v1/payment-intents/{id}/confirm``)
    to place the hold. One deposit intent per booking: a repeated call returns the first."""

    def __init__(self, provider: str = "sandbox") -> None:
        self._provider = provider

    async def collect_deposit(self, conn: Connection, request: DepositRequest) -> DepositOutcome:
        existing = await repository.deposit_for(conn, request.booking_id)
        if existing is not None:
            return DepositOutcome(status="requested", payment_reference=str(existing["id"]))
        row = await repository.insert_intent(
            conn,
            {
                "id": new_id(),
                "city_id": request.city_id,
                "customer_id": request.customer_id,
                "order_id": request.booking_id,
                "purpose": "deposit",
                "provider": self._provider,
                "capture_method": "manual",
                "currency": request.amount.currency,
                "amount_minor": request.amount.amount_minor,
                "status": "requires_payment_method",
            },
        )
        await repository.record_transition(
            conn, row["id"], None, row["status"], "booking", "deposit requested"
        )
        return DepositOutcome(status="requested", payment_reference=str(row["id"]))
