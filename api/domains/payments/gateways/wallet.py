"""The NEARX wallet as a payment provider: an authorization is a ledger hold.

Authorizing moves the amount from the customer's wallet to their hold account
(the database refuses a negative wallet, so concurrent spends cannot
overdraw); capture moves it on from the hold (posted by the payment service);
a void releases it. Each posting has a business key, so replays are no-ops,
and :meth:`retrieve` reads the truth back from the ledger for reconciliation.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from api.domains.ledger import repository as ledger_repo
from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import repository
from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    GatewayError,
    RefundOutcome,
    RefundState,
)
from nearx.db import Connection
from nearx.money import Money


def _ref(intent_id: uuid.UUID) -> str:
    return f"wal_{intent_id.hex}"


class WalletGateway:
    name = "wallet"
    supports_manual_capture = True
    authorization_ttl = timedelta(days=7)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        if request.customer_id is None:
            raise GatewayError("a wallet payment needs the customer")
        wallet = AccountRef(AccountKind.CUSTOMER_WALLET, request.amount.currency, request.customer_id)
        hold = AccountRef(AccountKind.WALLET_HOLD, request.amount.currency, request.customer_id)
        try:
            async with self._conn.transaction():
                await ledger.post(
                    self._conn,
                    kind="wallet.held",
                    business_key=f"wallet.hold:{request.intent_id}",
                    legs=[
                        ledger.debit(wallet, request.amount.amount_minor),
                        ledger.credit(hold, request.amount.amount_minor),
                    ],
                    reference_type="payment_intent",
                    reference_id=request.intent_id,
                )
        except ledger.InsufficientBalance:
            return ChargeOutcome(
                ChargeState.DECLINED, _ref(request.intent_id), decline_code="insufficient_funds"
            )
        state = ChargeState.CAPTURED if request.capture else ChargeState.AUTHORIZED
        captured = request.amount.amount_minor if request.capture else 0
        return ChargeOutcome(state, _ref(request.intent_id), amount_captured_minor=captured)

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        return ChargeOutcome(ChargeState.CAPTURED, provider_ref, amount_captured_minor=amount.amount_minor)

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        intent_id = uuid.UUID(hex=provider_ref.removeprefix("wal_"))
        row = await repository.get_intent(self._conn, intent_id)
        if row is None:
            raise GatewayError(f"no such wallet charge {provider_ref}")
        amount = row["amount_minor"]
        async with self._conn.transaction():
            await ledger.post(
                self._conn,
                kind="wallet.released",
                business_key=f"wallet.release:{intent_id}",
                legs=[
                    ledger.debit(
                        AccountRef(AccountKind.WALLET_HOLD, row["currency"], row["customer_id"]), amount
                    ),
                    ledger.credit(
                        AccountRef(AccountKind.CUSTOMER_WALLET, row["currency"], row["customer_id"]), amount
                    ),
                ],
                reference_type="payment_intent",
                reference_id=intent_id,
            )
        return ChargeOutcome(ChargeState.CANCELED, provider_ref)

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        """Nothing to do outside the ledger: the payment service credits the wallet back."""
        return RefundOutcome(RefundState.SUCCEEDED, f"wre_{idempotency_key}")

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        if await ledger_repo.entry_exists(self._conn, f"wallet.release:{intent_id}"):
            return ChargeOutcome(ChargeState.CANCELED, _ref(intent_id))
        if await ledger_repo.entry_exists(self._conn, f"wallet.hold:{intent_id}"):
            return ChargeOutcome(ChargeState.AUTHORIZED, _ref(intent_id))
        return ChargeOutcome(ChargeState.NOT_FOUND)

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        return RefundOutcome(RefundState.SUCCEEDED, f"wre_{refund_key}")
