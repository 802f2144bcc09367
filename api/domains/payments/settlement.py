"""Split settlement: who gets what from a captured order, and which legs a refund reverses.

Pure functions on integers (minor units) so the arithmetic is easy to test:
shares are rounded half-up by :meth:`nearx.money.Money.share`, and refunds are
reversed by *cumulative* pro-rata targets, so any sequence of partial refunds
that adds up to the captured amount reverses every leg exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import msgspec

from api.domains.ledger.accounts import AccountKind, AccountRef
from nearx.money import Money

RefundBearer = Literal["proportional", "merchant", "platform"]


class SettlementLeg(msgspec.Struct, frozen=True):
    """One party's credit from a capture: an account kind, its owner, and the amount."""

    kind: str
    owner: str | None
    amount_minor: int

    def account(self, currency: str) -> AccountRef:
        owner = uuid.UUID(self.owner) if self.owner and _is_uuid(self.owner) else self.owner
        return AccountRef(AccountKind(self.kind), currency, owner)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class OrderSplit:
    """What the marketplace tells payments about a captured order."""

    merchant_id: uuid.UUID
    items_minor: int
    """Goods or service subtotal, the base of the commission."""
    delivery_fee_minor: int = 0
    tax_minor: int = 0
    courier_id: uuid.UUID | None = None
    merchant_category: str = "default"

    @property
    def total_minor(self) -> int:
        return self.items_minor + self.delivery_fee_minor + self.tax_minor


def order_legs(split: OrderSplit, *, commission_bp: int, currency: str) -> list[SettlementLeg]:
    """Merchant share (items minus commission), courier fee, platform commission and tax."""
    if min(split.items_minor, split.delivery_fee_minor, split.tax_minor) < 0:
        raise ValueError("split amounts must not be negative")
    commission = Money(split.items_minor, currency).share(commission_bp).amount_minor
    legs = [
        SettlementLeg(
            AccountKind.MERCHANT_PAYABLE.value, str(split.merchant_id), split.items_minor - commission
        ),
        SettlementLeg(AccountKind.PLATFORM_REVENUE.value, None, commission),
        SettlementLeg(AccountKind.TAX_PAYABLE.value, None, split.tax_minor),
    ]
    if split.delivery_fee_minor:
        if split.courier_id is None:
            legs.append(SettlementLeg(AccountKind.PLATFORM_REVENUE.value, None, split.delivery_fee_minor))
        else:
            legs.append(
                SettlementLeg(
                    AccountKind.COURIER_PAYABLE.value, str(split.courier_id), split.delivery_fee_minor
                )
            )
    return [leg for leg in legs if leg.amount_minor]


def _cumulative(legs: list[SettlementLeg], captured: int, refunded: int) -> list[int]:
    """Per-leg reversal after ``refunded`` of ``captured``: floors, remainder to the largest leg."""
    targets = [leg.amount_minor * refunded // captured for leg in legs]
    largest = max(range(len(legs)), key=lambda i: (legs[i].amount_minor, -i))
    targets[largest] += refunded - sum(targets)
    return targets


def refund_reversal(
    legs: list[SettlementLeg], *, captured: int, refunded_before: int, amount: int, bearer: RefundBearer
) -> list[SettlementLeg]:
    """The legs to debit for a refund of ``amount`` (they sum to ``amount``).

    ``proportional`` reverses every leg pro rata. ``merchant`` and ``platform``
    reverse only the tax pro rata and take the rest from the merchant's payable
    or the platform's refund expense. Without a merchant leg (a top-up or an
    unallocated capture) every bearer is proportional.
    """
    if not 0 < amount <= captured - refunded_before:
        raise ValueError("refund exceeds what remains captured")
    has_merchant = any(leg.kind == AccountKind.MERCHANT_PAYABLE.value for leg in legs)
    if bearer == "proportional" or not has_merchant:
        before = _cumulative(legs, captured, refunded_before)
        after = _cumulative(legs, captured, refunded_before + amount)
        return [
            SettlementLeg(leg.kind, leg.owner, a - b)
            for leg, a, b in zip(legs, after, before, strict=True)
            if a != b
        ]
    taxes = [leg for leg in legs if leg.kind == AccountKind.TAX_PAYABLE.value]
    tax_before = sum(leg.amount_minor * refunded_before // captured for leg in taxes)
    tax_after = sum(leg.amount_minor * (refunded_before + amount) // captured for leg in taxes)
    reversal = [SettlementLeg(AccountKind.TAX_PAYABLE.value, None, tax_after - tax_before)] if taxes else []
    rest = amount - (tax_after - tax_before)
    if bearer == "merchant":
        merchant = next(leg for leg in legs if leg.kind == AccountKind.MERCHANT_PAYABLE.value)
        reversal.append(SettlementLeg(merchant.kind, merchant.owner, rest))
    else:
        reversal.append(SettlementLeg(AccountKind.REFUND_EXPENSE.value, None, rest))
    return [leg for leg in reversal if leg.amount_minor]


def net_of_refunds(legs: list[SettlementLeg], refunded_minor: int) -> list[SettlementLeg]:
    """The legs left after refunding ``refunded_minor`` before anything was captured.

    Money never captured was never anyone's, so every leg shrinks pro rata
    (the commission too), by the same arithmetic as a proportional refund.
    """
    merged = merge_legs(legs)
    if not refunded_minor:
        return merged
    total = sum(leg.amount_minor for leg in merged)
    taken = {
        (leg.kind, leg.owner): leg.amount_minor
        for leg in refund_reversal(
            merged, captured=total, refunded_before=0, amount=refunded_minor, bearer="proportional"
        )
    }
    return merge_legs(
        [
            SettlementLeg(leg.kind, leg.owner, leg.amount_minor - taken.get((leg.kind, leg.owner), 0))
            for leg in merged
        ]
    )


def merge_legs(legs: list[SettlementLeg]) -> list[SettlementLeg]:
    """One leg per (account kind, owner), in first-seen order, without zero legs."""
    merged: dict[tuple[str, str | None], int] = {}
    for leg in legs:
        merged[(leg.kind, leg.owner)] = merged.get((leg.kind, leg.owner), 0) + leg.amount_minor
    return [SettlementLeg(kind, owner, amount) for (kind, owner), amount in merged.items() if amount]
