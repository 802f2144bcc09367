"""HTTP surface of orders: checkout, reading, transitions, refunds, the merchant's queue."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromHeader, FromPath, FromQuery, JSONBody, Parameter

from api.domains.orders import service
from api.domains.orders.ports import RecordingRefundGateway, RefundGateway
from api.domains.orders.schemas import (
    CheckoutInput,
    CheckoutReviewInput,
    HeldCheckout,
    MerchantOrder,
    Order,
    OrderStatus,
    Refund,
    RefundInput,
    Transition,
    TransitionInput,
)
from api.domains.orders.service import Scoring
from api.idempotency import IDEMPOTENCY_HEADER, require_key
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from nearx.db import Connection
from nearx.settings import Settings

IdempotencyKey = Annotated[str | None, Parameter(header=IDEMPOTENCY_HEADER, required=False)]


def _refund_gateway(state: State) -> RefundGateway:
    """Payments plugs its implementation into ``app.state.refund_gateway``; else the recording default."""
    gateway: RefundGateway = state.get("refund_gateway") or RecordingRefundGateway()
    return gateway


def _scoring(state: State) -> Scoring:
    """The serving-backed fraud check and ETA promiser ``create_app`` plugs in (none: unscored)."""
    return Scoring(risk=state.get("checkout_risk"), promiser=state.get("eta_promiser"))


class OrderController(Controller):
    path = "/v1"
    tags = ["orders"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post(
        "/orders",
        operation_id="orders_checkout",
        summary="Check out a multi-merchant cart",
        response_model=Order,
    )
    async def checkout(
        self,
        data: JSONBody[CheckoutInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        state: State,
        idempotency_key: FromHeader[IdempotencyKey] = None,
    ) -> Response[Any]:
        key = require_key(idempotency_key)
        status, body = await service.checkout(
            conn,
            principal,
            data,
            key=key,
            settings=settings,
            scoring=_scoring(state),
            events=state.get("events"),
        )
        return Response(body, status_code=status)

    @get("/orders/{order_id:uuid}", operation_id="orders_get", summary="A checkout and its merchant orders")
    async def get_order(
        self,
        order_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Order:
        return await service.get_order(conn, principal, order_id, _scoring(state).promiser)

    @get("/merchant-orders/{order_id:uuid}", operation_id="merchant_orders_get", summary="One merchant order")
    async def get_merchant_order(
        self,
        order_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
    ) -> MerchantOrder:
        return await service.get_merchant_order(conn, principal, order_id, _scoring(state).promiser)

    @get(
        "/merchant-orders/{order_id:uuid}/history",
        operation_id="merchant_orders_history",
        summary="Every transition: who, when, why",
    )
    async def history(
        self,
        order_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> list[Transition]:
        return await service.history(conn, principal, order_id)

    @post(
        "/merchant-orders/{order_id:uuid}/transitions",
        operation_id="merchant_orders_transition",
        summary="Accept, reject, prepare, hand over, cancel",
        status_code=200,
    )
    async def transition(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[TransitionInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> MerchantOrder:
        return await service.transition_as(conn, principal, order_id, data)

    @post(
        "/merchant-orders/{order_id:uuid}/refunds",
        operation_id="merchant_orders_refund",
        summary="Refund in full or per item",
        response_model=Refund,
    )
    async def refund(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[RefundInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
        idempotency_key: FromHeader[IdempotencyKey] = None,
    ) -> Response[Any]:
        key = require_key(idempotency_key)
        status, body = await service.refund(
            conn, principal, order_id, data, key=key, gateway=_refund_gateway(state)
        )
        return Response(body, status_code=status)

    @get(
        "/merchants/{merchant_id:uuid}/orders",
        operation_id="merchant_orders_queue",
        summary="The merchant's queue",
    )
    async def queue(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        status: FromQuery[list[OrderStatus] | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> list[MerchantOrder]:
        statuses: list[str] = (
            list(status) if status else ["placed", "accepted", "preparing", "ready_for_pickup"]
        )
        return await service.merchant_queue(conn, principal, merchant_id, statuses, limit)

    @get(
        "/admin/checkout-reviews",
        operation_id="checkout_reviews_list",
        summary="Checkouts the fraud check held for a person",
        guards=[requires_role(Role.ADMIN, Role.SUPPORT)],
    )
    async def held(
        self,
        conn: NamedDependency[Connection],
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> list[HeldCheckout]:
        return await service.held_checkouts(conn, limit)

    @post(
        "/admin/checkout-reviews/{assessment_id:uuid}",
        operation_id="checkout_reviews_decide",
        summary="Label a held checkout fraud, or clear the customer's cart",
        guards=[requires_role(Role.ADMIN, Role.SUPPORT)],
        status_code=200,
    )
    async def review(
        self,
        assessment_id: FromPath[uuid.UUID],
        data: JSONBody[CheckoutReviewInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> HeldCheckout:
        return await service.review_checkout(conn, principal, assessment_id, data)
