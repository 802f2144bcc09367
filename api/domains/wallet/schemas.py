"""Request and response bodies of the wallet API."""

from __future__ import annotations

import uuid

from api.domains.payments.schemas import PositiveAmount
from api.schemas import CurrencyCode, Input, Output


class TopUpIn(Input):
    amount_minor: PositiveAmount
    currency: CurrencyCode
    payment_method: str


class WalletOut(Output):
    user_id: uuid.UUID
    currency: str
    kyc_tier: int
    available_minor: int
    held_minor: int
    max_balance_minor: int
    max_top_up_minor: int
