"""The interface the marketplace calls: capture an order with its split, refund, hold deposits.

Two shapes, because the callers have two needs:

* plain async functions (:func:`capture_for_order`, :func:`refund`,
  :func:`hold_deposit`, :func:`release_deposit`, :func:`capture_deposit`)
  that talk to providers and so run *outside* any caller transaction;
* :func:`capture_settled_orders`, run by ``nearx payments reconcile``, which
  captures an order's authorization once all its merchant orders are final
  (delivered, cancelled, rejected, refunded), split per merchant, courier,
  platform and tax;
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
from dataclasses import dataclass
from typing import Any

from api.domains.bookings.ports import DepositOutcome, DepositRequest
from api.domains.orders.ports import RefundOutcome, RefundRequest
from api.domains.payments import repository, service
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.settlement import (
    OrderSplit,
    RefundBearer,
    SettlementLeg,
    merge_legs,
    net_of_refunds,
    order_legs,
)
from api.errors import Conflict, InvalidInput
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


@dataclass(frozen=True, slots=True)
class OrderCaptureReport:
    captured: int
    voided: int
    """Payments of orders that ended with nothing to charge (all cancelled, or refunded in full)."""
    unsettled: int
    """Payments that could not be settled automatically (more owed than authorized, a decline, or
    an order paid by more than one intent)."""


def order_settlement(
    orders: list[Row], commission_bp: Mapping[str, int], currency: str
) -> list[SettlementLeg]:
    """The capture's legs for an order's merchant orders, from what each finally came to.

    Delivered ones pay items (less the merchant-funded discount) with the
    category commission, the delivery fee (to the courier who delivered, else
    the platform) and tax, net of refunds made before the capture; a
    cancellation after acceptance pays its fee to the merchant; the rest pay nothing.
    """
    legs: list[SettlementLeg] = []
    for order in orders:
        if order["status"] in ("delivered", "partially_refunded", "refunded"):
            split = OrderSplit(
                merchant_id=order["merchant_id"],
                items_minor=order["items_minor"] - order["discount_minor"],
                delivery_fee_minor=order["delivery_fee_minor"],
                tax_minor=order["tax_minor"],
                courier_id=order["courier_id"],
                merchant_category=order["category"],
            )
            full = order_legs(split, commission_bp=commission_bp[order["category"]], currency=currency)
            legs += net_of_refunds(full, order["refunded_minor"])
        elif order["status"] == "cancelled" and order["cancellation_fee_minor"]:
            fee = OrderSplit(
                merchant_id=order["merchant_id"],
                items_minor=order["cancellation_fee_minor"],
                merchant_category=order["category"],
            )
            legs += order_legs(fee, commission_bp=commission_bp[order["category"]], currency=currency)
    return merge_legs(legs)


async def capture_settled_orders(conn: Connection, gateways: Mapping[str, Gateway]) -> OrderCaptureReport:
    """Capture each authorized order payment whose merchant orders are all final, split per party.

    Run by ``nearx payments reconcile`` (outside any transaction: it calls the
    providers). The intent's status is the guard: a capture moves it out of
    ``requires_capture``, so a second pass or a concurrent one captures nothing twice.
    """
    captured = voided = unsettled = 0
    for ready in await repository.intents_of_settled_orders(conn):
        intent_id = ready["id"]
        if ready["payers"] > 1:
            unsettled += 1  # e.g. wallet + card: which part pays which leg is a person's call
            continue
        row = await service.get_intent(conn, intent_id)
        orders = await repository.merchant_orders_paid_by(conn, row["order_id"])
        rates = {o["category"]: await repository.commission_bp(conn, o["category"]) for o in orders}
        legs = order_settlement(orders, rates, row["currency"])
        total = sum(leg.amount_minor for leg in legs)
        try:
            if total == 0:
                await service.cancel(
                    conn, gateways, intent_id, actor="marketplace", reason="nothing_to_charge"
                )
                voided += 1
                continue
            done = await service.capture(
                conn,
                gateways,
                intent_id,
                amount=service.money(total, row["currency"]),
                actor="marketplace",
                settlement=legs,
            )
        except InvalidInput:
            unsettled += 1  # more is owed than was authorized: a person has to settle it
            continue
        except Conflict:
            continue  # another pass took it first
        if done["status"] == "succeeded":
            captured += 1
        else:
            unsettled += 1
    return OrderCaptureReport(captured, voided, unsettled)


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
    Before the order's payment is captured, nothing is sent: the refund stays
    ``requested`` and :func:`capture_settled_orders` captures only what the
    order still owes. Without any payment for the order it is ``failed``.
    """

    def __init__(self, bearer: RefundBearer = "merchant") -> None:
        self._bearer = bearer

    async def request_refund(self, conn: Connection, request: RefundRequest) -> RefundOutcome:
        row = await repository.captured_intent_for_order(
            conn, (request.merchant_order_id, request.parent_order_id)
        )
        if row is None:
            authorized = await repository.authorized_intent_for_order(
                conn, (request.merchant_order_id, request.parent_order_id)
            )
            # not captured yet: the capture takes only what the order still owes after this refund
            return RefundOutcome(status="requested" if authorized is not None else "failed")
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
