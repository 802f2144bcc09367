"""The interface the marketplace calls, including the orders and bookings ports."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from api.domains.bookings.ports import DepositGateway, DepositRequest
from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.orders.ports import RefundGateway, RefundRequest
from api.domains.payments import marketplace, service
from api.domains.payments.settlement import OrderSplit
from api.errors import InvalidInput
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.helpers import assert_ledger_invariants, gateways, scalar

CUSTOMER, MERCHANT, COURIER = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)


async def _order_payment(conn: Connection, order_id: uuid.UUID, amount: int) -> uuid.UUID:
    gws = gateways(conn)
    intent = await service.create_intent(
        conn,
        gws,
        service.NewIntent(
            amount=Money(amount, "NPR"),
            provider="sandbox",
            customer_id=CUSTOMER,
            order_id=order_id,
            city_id="kathmandu",
        ),
        actor="t",
    )
    await service.confirm(conn, gws, intent["id"], payment_method="pm_card_visa", actor="t")
    return intent["id"]


async def test_capture_for_order_uses_the_category_commission(conn: Connection) -> None:
    order = uuid.uuid4()
    intent_id = await _order_payment(conn, order, 12_000)
    split = OrderSplit(
        merchant_id=MERCHANT,
        courier_id=COURIER,
        items_minor=10_000,
        delivery_fee_minor=1_000,
        tax_minor=1_000,
        merchant_category="grocery",
    )
    done = await marketplace.capture_for_order(conn, gateways(conn), intent_id, split)
    assert done["amount_captured"] == 12_000
    merchant = AccountRef(AccountKind.MERCHANT_PAYABLE, "NPR", MERCHANT)
    assert await ledger.balance(conn, merchant) == 10_000 - 800  # grocery: 800 bp
    assert await ledger.balance(conn, AccountRef(AccountKind.PLATFORM_REVENUE, "NPR")) == 800
    with pytest.raises(InvalidInput):
        await marketplace.capture_for_order(
            conn,
            gateways(conn),
            await _order_payment(conn, uuid.uuid4(), 5_000),
            OrderSplit(merchant_id=MERCHANT, items_minor=6_000),
        )  # more than authorized


async def test_the_orders_refund_port_reserves_then_the_dispatcher_refunds(conn: Connection) -> None:
    order = uuid.uuid4()
    intent_id = await _order_payment(conn, order, 12_000)
    await marketplace.capture_for_order(
        conn, gateways(conn), intent_id, OrderSplit(merchant_id=MERCHANT, items_minor=11_000, tax_minor=1_000)
    )
    port: RefundGateway = marketplace.OrderRefunds()
    request = RefundRequest(
        refund_id=uuid.uuid4(),
        merchant_order_id=order,
        parent_order_id=uuid.uuid4(),
        customer_id=CUSTOMER,
        merchant_id=MERCHANT,
        city_id="kathmandu",
        amount=Money(6_000, "NPR"),
        reason="damaged",
    )
    async with conn.transaction():
        outcome = await port.request_refund(conn, request)
        again = await port.request_refund(conn, request)
    assert outcome.status == again.status == "requested"
    assert outcome.payment_reference == again.payment_reference
    async with conn.transaction():
        too_much = dataclasses.replace(request, refund_id=uuid.uuid4(), amount=Money(6_001, "NPR"))
        with pytest.raises(InvalidInput):
            await port.request_refund(conn, too_much)
    report = await service.reconcile(conn, gateways(conn), older_than=timedelta(0))
    assert report.refunds_dispatched == 1
    assert (await service.get_intent(conn, intent_id))["amount_refunded"] == 6_000
    assert (
        await ledger.balance(conn, AccountRef(AccountKind.MERCHANT_PAYABLE, "NPR", MERCHANT))
        == 11_000 - 1_100 - 5_500  # default 1000 bp; tax reversed pro rata
    )
    await assert_ledger_invariants(conn)


async def test_a_refund_for_an_unpaid_order_fails_without_writing(conn: Connection) -> None:
    port: RefundGateway = marketplace.OrderRefunds()
    request = RefundRequest(
        refund_id=uuid.uuid4(),
        merchant_order_id=uuid.uuid4(),
        parent_order_id=uuid.uuid4(),
        customer_id=CUSTOMER,
        merchant_id=MERCHANT,
        city_id="kathmandu",
        amount=Money(100, "NPR"),
        reason="x",
    )
    async with conn.transaction():
        assert (await port.request_refund(conn, request)).status == "failed"
    assert await scalar(conn, "SELECT count(*) FROM payment_refunds") == 0


async def test_deposits_hold_then_capture_or_release(conn: Connection) -> None:
    booking = uuid.uuid4()
    held = await marketplace.hold_deposit(
        conn,
        gateways(conn),
        customer_id=CUSTOMER,
        amount=Money(5_000, "NPR"),
        booking_id=booking,
        payment_method="pm_card_visa",
    )
    assert held["status"] == "requires_capture"
    kept = await marketplace.capture_deposit(conn, gateways(conn), held["id"], Money(2_000, "NPR"))
    assert kept["amount_captured"] == 2_000
    other = await marketplace.hold_deposit(
        conn,
        gateways(conn),
        customer_id=CUSTOMER,
        amount=Money(5_000, "NPR"),
        booking_id=uuid.uuid4(),
        payment_method="pm_card_visa",
    )
    assert (await marketplace.release_deposit(conn, gateways(conn), other["id"]))["status"] == "canceled"
    port: DepositGateway = marketplace.BookingDeposits()
    request = DepositRequest(
        booking_id=uuid.uuid4(),
        customer_id=CUSTOMER,
        provider_id=uuid.uuid4(),
        city_id="kathmandu",
        amount=Money(3_000, "NPR"),
    )
    async with conn.transaction():
        first = await port.collect_deposit(conn, request)
        second = await port.collect_deposit(conn, request)
    assert first.payment_reference == second.payment_reference
    assert first.payment_reference is not None
    confirmed = await service.confirm(
        conn,
        gateways(conn),
        uuid.UUID(first.payment_reference),
        payment_method="pm_card_visa",
        actor="customer",
    )
    assert confirmed["status"] == "requires_capture"
