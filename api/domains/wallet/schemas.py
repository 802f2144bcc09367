"""Request and response bodies of the wallet API."""

from __future__ import annotations

import uuid

from api.domains.payments.schemas import IntentOut, PositiveAmount
from api.schemas import CurrencyCode, Input, Output


class TopUpIn(Input):
    amount_minor: PositiveAmount
    currency: CurrencyCode
    payment_method: str


class WalletPayIn(Input):
    amount_minor: PositiveAmount
    currency: CurrencyCode
    card_payment_method: str | None = None
    """Pays what the wallet cannot cover; without it the wallet must cover everything."""
    order_id: uuid.UUID | None = None


class WalletPaymentOut(Output):
    intents: list[IntentOut]
    """The wallet part first, then the card part (if any); both manual-capture authorizations."""


class WalletOut(Output):
    user_id: uuid.UUID
    currency: str
    kyc_tier: int
    available_minor: int
    held_minor: int
    max_balance_minor: int
    max_top_up_minor: int
