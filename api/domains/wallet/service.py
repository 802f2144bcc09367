"""Wallet rules: top-up through a gateway, pay with wallet or wallet + card, credits, KYC limits.

Spending is a wallet-provider payment intent: its authorization is a ledger
hold, and the database refuses any posting that would take a wallet below
zero, so concurrent spends cannot overdraw. Top-ups are card intents whose
capture credits the wallet; the limit check locks the wallet row, so two
concurrent top-ups cannot both slip under the balance limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import service as payments
from api.domains.payments.fraud import FraudScorer
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.settlement import SettlementLeg
from api.domains.wallet import repository
from api.domains.wallet.limits import LIMITS_BY_TIER
from api.errors import InvalidInput
from nearx.db import Connection
from nearx.money import Money

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WalletView:
    user_id: uuid.UUID
    currency: str
    kyc_tier: int
    available_minor: int
    held_minor: int
    max_balance_minor: int
    max_top_up_minor: int


def wallet_account(user_id: uuid.UUID, currency: str) -> AccountRef:
    return AccountRef(AccountKind.CUSTOMER_WALLET, currency, user_id)


def hold_account(user_id: uuid.UUID, currency: str) -> AccountRef:
    return AccountRef(AccountKind.WALLET_HOLD, currency, user_id)


async def view(conn: Connection, user_id: uuid.UUID, currency: str) -> WalletView:
    async with conn.transaction():
        wallet = await repository.ensure_wallet(conn, user_id, currency)
    limits = LIMITS_BY_TIER[wallet["kyc_tier"]]
    return WalletView(
        user_id=user_id,
        currency=currency,
        kyc_tier=wallet["kyc_tier"],
        available_minor=await ledger.balance(conn, wallet_account(user_id, currency)),
        held_minor=await ledger.balance(conn, hold_account(user_id, currency)),
        max_balance_minor=limits.max_balance_minor,
        max_top_up_minor=limits.max_top_up_minor,
    )


async def top_up(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    user_id: uuid.UUID,
    amount: Money,
    *,
    payment_method: str,
    provider: str = "sandbox",
    scorer: FraudScorer | None = None,
    second_factor: bool = False,
) -> Row:
    """Charge a card (automatic capture) and credit the wallet when the capture succeeds.

    The top-up passes the same fraud gate as any payment (``scorer``; a step-up
    needs ``second_factor``)."""
    async with conn.transaction():
        wallet = await repository.ensure_wallet(conn, user_id, amount.currency, lock=True)
        limits = LIMITS_BY_TIER[wallet["kyc_tier"]]
        if amount.amount_minor > limits.max_top_up_minor:
            raise InvalidInput(
                f"a top-up is limited to {limits.max_top_up_minor} at KYC tier {wallet['kyc_tier']}",
                limit="max_top_up",
            )
        projected = (
            await ledger.balance(conn, wallet_account(user_id, amount.currency))
            + await ledger.balance(conn, hold_account(user_id, amount.currency))
            + await repository.pending_top_ups(conn, user_id, amount.currency)
            + amount.amount_minor
        )
        if projected > limits.max_balance_minor:
            raise InvalidInput(
                f"the wallet balance is limited to {limits.max_balance_minor} "
                f"at KYC tier {wallet['kyc_tier']}",
                limit="max_balance",
            )
        intent = await payments.create_intent(
            conn,
            gateways,
            payments.NewIntent(
                amount=amount,
                provider=provider,
                purpose="topup",
                capture_method="automatic",
                customer_id=user_id,
                payment_method=payment_method,
                settlement=[
                    SettlementLeg(AccountKind.CUSTOMER_WALLET.value, str(user_id), amount.amount_minor)
                ],
            ),
            actor=f"user:{user_id}",
        )
    return await payments.confirm(
        conn,
        gateways,
        intent["id"],
        payment_method=payment_method,
        actor=f"user:{user_id}",
        scorer=scorer,
        second_factor=second_factor,
    )


async def pay(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    user_id: uuid.UUID,
    amount: Money,
    *,
    card_payment_method: str | None = None,
    card_provider: str = "sandbox",
    order_id: uuid.UUID | None = None,
    capture_method: payments.CaptureMethod = "manual",
    scorer: FraudScorer | None = None,
    second_factor: bool = False,
) -> list[Row]:
    """Authorize ``amount`` from the wallet, and the rest from a card when one is given.

    The wallet part is what is available; with no card it must cover all. If
    the card part fails, the wallet hold is released, so a half-paid order
    never keeps the customer's money.
    """
    available = await ledger.balance(conn, wallet_account(user_id, amount.currency))
    from_wallet = min(available, amount.amount_minor)
    from_card = amount.amount_minor - from_wallet
    if from_card and card_payment_method is None:
        raise InvalidInput(f"the wallet holds {available}; add a card for the remaining {from_card}")
    intents: list[Row] = []
    actor = f"user:{user_id}"
    for provider, part, method in (
        ("wallet", from_wallet, "wallet"),
        (card_provider, from_card, card_payment_method),
    ):
        if not part:
            continue
        created = await payments.create_intent(
            conn,
            gateways,
            payments.NewIntent(
                amount=Money(part, amount.currency),
                provider=provider,
                customer_id=user_id,
                order_id=order_id,
                capture_method=capture_method,
            ),
            actor=actor,
        )
        confirmed = await payments.confirm(
            conn,
            gateways,
            created["id"],
            payment_method=method,
            actor=actor,
            scorer=scorer,
            second_factor=second_factor,
        )
        intents.append(confirmed)
        if confirmed["status"] not in ("requires_capture", "succeeded"):
            for earlier in intents[:-1]:
                if earlier["status"] == "requires_capture":
                    await payments.cancel(
                        conn, gateways, earlier["id"], actor=actor, reason="split_payment_failed"
                    )
            break
    return intents


async def grant_credit(
    conn: Connection, user_id: uuid.UUID, amount: Money, *, reason: str, business_key: str
) -> bool:
    """Cashback or a goodwill credit paid by the platform; once per ``business_key``."""
    if amount.amount_minor <= 0:
        raise InvalidInput("a credit must be positive")
    async with conn.transaction():
        await repository.ensure_wallet(conn, user_id, amount.currency)
        entry = await ledger.post(
            conn,
            kind="wallet.credited",
            business_key=f"wallet.credit:{business_key}",
            legs=[
                ledger.debit(
                    AccountRef(AccountKind.PROMOTIONS_EXPENSE, amount.currency), amount.amount_minor
                ),
                ledger.credit(wallet_account(user_id, amount.currency), amount.amount_minor),
            ],
            memo=reason,
        )
    return entry is not None
