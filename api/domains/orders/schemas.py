"""Request and response bodies of checkout, merchant orders, transitions and refunds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.schemas import AmountMinor, Input, Latitude, Longitude, Output

OrderStatus = Literal[
    "placed",
    "accepted",
    "rejected",
    "preparing",
    "ready_for_pickup",
    "picked_up",
    "delivered",
    "cancelled",
    "refunded",
    "partially_refunded",
]
PaymentMethod = Literal["card", "wallet", "cash"]
FraudDecision = Literal["approve", "step_up", "review"]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=1000)]


class CartItem(Input, kw_only=True):
    variant_id: uuid.UUID
    quantity: Quantity
    unit_price_minor: AmountMinor | None = None
    """The price the client showed; if it differs from the server's price the checkout is refused."""


class DeliveryPoint(Input, kw_only=True):
    lat: Latitude
    lng: Longitude


class CheckoutInput(Input, kw_only=True):
    items: Annotated[list[CartItem], msgspec.Meta(min_length=1, max_length=100)]
    delivery: DeliveryPoint
    promo_code: Annotated[str, msgspec.Meta(pattern="^[A-Z0-9_-]{3,32}$")] | None = None
    emergency: bool = False
    emergency_reason: Reason | None = None
    expected_total_minor: AmountMinor | None = None
    """The total the client showed; a different server total refuses the checkout."""
    payment_method: PaymentMethod | None = None
    """How the customer means to pay (the fraud model weighs it); unknown when omitted."""
    match_id: uuid.UUID | None = None
    """The ``/v1/match`` answer the customer ordered from: ``order.created`` carries it, joining
    the order to that match's impressions for the ranker's next training."""


class TransitionInput(Input, kw_only=True):
    to: OrderStatus
    reason: Reason | None = None


class RefundItem(Input, kw_only=True):
    item_id: uuid.UUID
    quantity: Quantity


class RefundInput(Input, kw_only=True):
    reason: Reason
    items: Annotated[list[RefundItem], msgspec.Meta(max_length=100)] | None = None
    """Omitted: refund everything not yet refunded (items and delivery fee)."""


class OrderLine(Output):
    id: uuid.UUID
    product_id: uuid.UUID
    variant_id: uuid.UUID
    name: str
    sku: str
    quantity: int
    unit_price_minor: int
    tax_class: str
    tax_minor: int
    line_minor: int
    refunded_quantity: int


class EtaPromise(Output):
    """When the order should arrive, in seconds from ``promised_at``: P50 and P90."""

    p50_s: int
    p90_s: int
    promised_at: datetime
    model: str | None
    """``nearx-eta@<version>``; ``None`` when the routing heuristic answered."""
    degraded: str | None
    """Why the heuristic answered (``no_model``, ``features_unavailable``, ``over_budget``...)."""


class LiveEta(Output):
    """After pickup: when the courier should be at the door, from their last reported position."""

    p50_at: datetime
    p90_at: datetime
    position_at: datetime
    model: str | None
    degraded: str | None


class FraudCheck(Output):
    decision: FraudDecision
    score: float
    reasons: list[str]
    scorer: str


class MerchantOrder(Output):
    id: uuid.UUID
    parent_id: uuid.UUID
    merchant_id: uuid.UUID
    status: OrderStatus
    currency: str
    items_minor: int
    delivery_fee_minor: int
    tax_minor: int
    discount_minor: int
    total_minor: int
    refunded_minor: int
    cancellation_fee_minor: int
    cancelled_by: str | None
    emergency: bool
    accept_by: datetime
    created_at: datetime
    items: list[OrderLine]
    eta: EtaPromise | None
    """The promise made at checkout (``None`` for orders placed before promises existed)."""
    eta_live: LiveEta | None = None
    """Refreshed from the courier's position while the order is picked up (reading endpoints)."""


class Order(Output):
    id: uuid.UUID
    customer_id: uuid.UUID
    city_id: str
    currency: str
    items_minor: int
    delivery_fee_minor: int
    tax_minor: int
    discount_minor: int
    total_minor: int
    emergency: bool
    created_at: datetime
    merchant_orders: list[MerchantOrder]
    fraud: FraudCheck | None
    """The checkout's fraud assessment (``None`` when no scorer was plugged in)."""
    match_id: uuid.UUID | None


class Transition(Output):
    from_status: str | None
    to_status: str
    actor_kind: str
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime


class Refund(Output):
    id: uuid.UUID
    order_id: uuid.UUID
    amount_minor: int
    currency: str
    reason: str
    status: str
    payment_reference: str | None
    order_status: OrderStatus


class CheckoutReviewInput(Input, kw_only=True):
    fraud: bool
    """The reviewer's verdict: ``true`` labels it fraud (it stays held), ``false`` clears the cart."""


class HeldCheckout(Output):
    """A checkout the fraud check held for a person, with what the scorer saw."""

    id: uuid.UUID
    customer_id: uuid.UUID
    city_id: str
    scorer: str
    score: float
    reasons: list[str]
    inputs: dict[str, Any]
    at: datetime
    fraud: bool | None
    reviewed_at: datetime | None
