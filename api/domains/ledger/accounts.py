"""The chart of accounts: which kinds exist, their normal side, and how each is keyed.

An account is identified by a stable key (kind, owner, currency), so services
name accounts by meaning and the ledger creates them on first use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from nearx.money import validate_currency


class AccountKind(StrEnum):
    CUSTOMER_WALLET = "customer_wallet"
    """What the platform owes a customer (stored value); never negative."""
    WALLET_HOLD = "wallet_hold"
    """Wallet money reserved by an authorization, not yet captured; never negative."""
    MERCHANT_PAYABLE = "merchant_payable"
    COURIER_PAYABLE = "courier_payable"
    PLATFORM_REVENUE = "platform_revenue"
    TAX_PAYABLE = "tax_payable"
    GATEWAY_CLEARING = "gateway_clearing"
    """What a payment provider owes the platform for captured, unsettled payments."""
    REFUND_EXPENSE = "refund_expense"
    """Refunds the platform chose to bear."""
    PROMOTIONS_EXPENSE = "promotions_expense"
    """Cashback and credits granted by the platform."""
    UNALLOCATED_RECEIPTS = "unallocated_receipts"
    """Captured money not (yet) split to an order's parties."""
    PAYOUTS_CLEARING = "payouts_clearing"


_DEBIT_NORMAL = frozenset(
    {
        AccountKind.GATEWAY_CLEARING,
        AccountKind.REFUND_EXPENSE,
        AccountKind.PROMOTIONS_EXPENSE,
        AccountKind.PAYOUTS_CLEARING,
    }
)
_NEVER_NEGATIVE = frozenset({AccountKind.CUSTOMER_WALLET, AccountKind.WALLET_HOLD})


@dataclass(frozen=True, slots=True)
class AccountRef:
    """A ledger account named by meaning: kind, owner (user/merchant/courier/provider) and currency."""

    kind: AccountKind
    currency: str
    owner: uuid.UUID | str | None = None

    def __post_init__(self) -> None:
        validate_currency(self.currency)

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.owner or '-'}:{self.currency}"

    @property
    def normal_side(self) -> str:
        return "debit" if self.kind in _DEBIT_NORMAL else "credit"

    @property
    def allow_negative(self) -> bool:
        return self.kind not in _NEVER_NEGATIVE

    @property
    def owner_uuid(self) -> uuid.UUID | None:
        return self.owner if isinstance(self.owner, uuid.UUID) else None
