"""Server-side pricing of a multi-merchant cart: pure functions, no I/O.

Prices are tax-exclusive integer minor units. Tax is computed per line at the
product's tax-class rate and rounded half-up per line (``Money.share``), the
way receipts print it. A promotion takes a percentage of each merchant
order's items subtotal, capped per merchant order; tax is levied on the
undiscounted lines (the promotion is funded by the platform). The delivery fee
is per merchant order: the city's base fee plus a per-kilometre rate on the
straight-line distance, in whole metres.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nearx.money import Money


@dataclass(frozen=True, slots=True)
class Line:
    variant_id: uuid.UUID
    merchant_id: uuid.UUID
    unit_price: Money
    quantity: int
    tax_rate_bp: int

    @property
    def amount(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def tax(self) -> Money:
        return self.amount.share(self.tax_rate_bp)


@dataclass(frozen=True, slots=True)
class Promotion:
    percent_bp: int
    max_discount_minor: int | None


@dataclass(frozen=True, slots=True)
class ChildTotals:
    items: Money
    delivery_fee: Money
    tax: Money
    discount: Money

    @property
    def total(self) -> Money:
        return self.items + self.delivery_fee + self.tax - self.discount


def delivery_fee(currency: str, *, base_minor: int, per_km_minor: int, distance_m: int) -> Money:
    return Money(base_minor + per_km_minor * distance_m // 1000, currency)


def price_child(lines: list[Line], fee: Money, promotion: Promotion | None) -> ChildTotals:
    """Totals of one merchant order."""
    zero = Money(0, fee.currency)
    items = sum((line.amount for line in lines), zero)
    tax = sum((line.tax for line in lines), zero)
    discount = zero
    if promotion is not None:
        discount = items.share(promotion.percent_bp)
        if promotion.max_discount_minor is not None and discount.amount_minor > promotion.max_discount_minor:
            discount = Money(promotion.max_discount_minor, fee.currency)
    return ChildTotals(items=items, delivery_fee=fee, tax=tax, discount=discount)
