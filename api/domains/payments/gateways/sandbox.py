"""The default runtime gateway: a provider simulator with Stripe-test-mode magic values.

Its "provider side" lives in the ``sandbox_gateway_*`` tables, so a timeout
can be simulated honestly: the charge is recorded as processed, then the reply
is "lost", and reconciliation (maybe in another process) learns the truth by
calling :meth:`SandboxGateway.retrieve`.

Magic payment methods (card number or Stripe-style token):

=================================================  ==========================================
``4242424242424242`` / ``pm_card_visa``             authorized (or captured when auto-capture)
``4000000000000002`` / ``pm_card_chargeDeclined``   declined, ``card_declined``
``4000000000009995`` / ``pm_card_chargeDeclinedInsufficientFunds``  declined, ``insufficient_funds``
``4000002760003184`` / ``pm_card_threeDSecureRequired``  ``requires_action``; confirming again
                                                     (the customer "authenticated") authorizes
``4000000000000408`` / ``pm_card_timeout``          provider authorizes, reply times out
``4000000000000504`` / ``pm_card_timeoutDeclined``  provider declines, reply times out
=================================================  ==========================================

Magic amounts: a capture or refund whose amount ends in ``408`` minor units
(``amount_minor % 1000 == 408``) is processed by the provider but times out.
Any other payment method string is treated as a good card.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from api.domains.payments.gateways import sandbox_repository as sandbox_repo
from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    GatewayError,
    GatewayTimeout,
    RefundOutcome,
    RefundState,
)
from nearx.db import Connection
from nearx.money import Money

_APPROVE = "approve"
_DECLINE = "card_declined"
_NO_FUNDS = "insufficient_funds"
_THREE_DS = "three_d_secure"
_TIMEOUT = "timeout"
_TIMEOUT_DECLINE = "timeout_declined"

MAGIC_PAYMENT_METHODS: dict[str, str] = {
    "4242424242424242": _APPROVE,
    "pm_card_visa": _APPROVE,
    "4000000000000002": _DECLINE,
    "pm_card_chargeDeclined": _DECLINE,
    "4000000000009995": _NO_FUNDS,
    "pm_card_chargeDeclinedInsufficientFunds": _NO_FUNDS,
    "4000002760003184": _THREE_DS,
    "pm_card_threeDSecureRequired": _THREE_DS,
    "4000000000000408": _TIMEOUT,
    "pm_card_timeout": _TIMEOUT,
    "4000000000000504": _TIMEOUT_DECLINE,
    "pm_card_timeoutDeclined": _TIMEOUT_DECLINE,
}
TIMEOUT_AMOUNT_SUFFIX = 408
"""Captures and refunds of ``amount_minor % 1000 == 408`` are processed, then time out."""


def _times_out(amount: Money) -> bool:
    return amount.amount_minor % 1000 == TIMEOUT_AMOUNT_SUFFIX


class SandboxGateway:
    """A simulated card provider; see the module docstring for the magic values."""

    supports_manual_capture = True

    def __init__(self, conn: Connection, *, name: str = "sandbox", authorization_days: int = 7) -> None:
        self._conn = conn
        self.name = name
        self.authorization_ttl = timedelta(days=authorization_days)

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        behaviour = MAGIC_PAYMENT_METHODS.get(request.payment_method, _APPROVE)
        ref = f"sbx_{request.intent_id.hex}"
        existing = await sandbox_repo.charge(self._conn, request.intent_id)
        if behaviour == _THREE_DS and existing is None:
            await sandbox_repo.save_charge(
                self._conn, request.intent_id, ref, request.amount, "requires_action", 0
            )
            return ChargeOutcome(
                ChargeState.REQUIRES_ACTION, ref, action_url=f"https://sandbox.invalid/3ds/{ref}"
            )
        if existing is not None and existing["state"] not in ("requires_action", "declined"):
            return _outcome(existing)  # an idempotent replay of an earlier authorization
        if behaviour in (_DECLINE, _NO_FUNDS, _TIMEOUT_DECLINE):
            code = _NO_FUNDS if behaviour == _NO_FUNDS else _DECLINE
            await sandbox_repo.save_charge(
                self._conn, request.intent_id, ref, request.amount, "declined", 0, code
            )
            if behaviour == _TIMEOUT_DECLINE:
                raise GatewayTimeout("sandbox: no reply from the provider")
            return ChargeOutcome(ChargeState.DECLINED, ref, decline_code=code)
        state = "captured" if request.capture else "authorized"
        captured = request.amount.amount_minor if request.capture else 0
        await sandbox_repo.save_charge(self._conn, request.intent_id, ref, request.amount, state, captured)
        if behaviour == _TIMEOUT:
            raise GatewayTimeout("sandbox: no reply from the provider")
        return ChargeOutcome(ChargeState(state), ref, amount_captured_minor=captured)

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        row = await self._require(provider_ref)
        if row["state"] == "authorized":
            if amount.amount_minor > row["amount_minor"]:
                raise GatewayError("amount_to_capture exceeds the authorized amount")
            row = await sandbox_repo.set_state(self._conn, provider_ref, "captured", amount.amount_minor)
        elif row["state"] != "captured":
            raise GatewayError(f"cannot capture a charge in state {row['state']}")
        if _times_out(amount):
            raise GatewayTimeout("sandbox: no reply to capture")
        return _outcome(row)

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        row = await self._require(provider_ref)
        if row["state"] in ("authorized", "requires_action"):
            row = await sandbox_repo.set_state(self._conn, provider_ref, "canceled", 0)
        elif row["state"] != "canceled":
            raise GatewayError(f"cannot cancel a charge in state {row['state']}")
        return _outcome(row)

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        row = await self._require(provider_ref)
        done = await sandbox_repo.refund(self._conn, idempotency_key)
        if done is None:
            if (
                row["state"] != "captured"
                or row["refunded_minor"] + amount.amount_minor > row["captured_minor"]
            ):
                return RefundOutcome(RefundState.FAILED, failure_reason="charge_not_refundable")
            await sandbox_repo.save_refund(self._conn, idempotency_key, provider_ref, amount.amount_minor)
        if _times_out(amount):
            raise GatewayTimeout("sandbox: no reply to refund")
        return RefundOutcome(RefundState.SUCCEEDED, f"re_{idempotency_key}")

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        row = await sandbox_repo.charge(self._conn, intent_id)
        return ChargeOutcome(ChargeState.NOT_FOUND) if row is None else _outcome(row)

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        done = await sandbox_repo.refund(self._conn, refund_key)
        if done is None:
            return RefundOutcome(RefundState.FAILED, failure_reason="not_found")
        return RefundOutcome(RefundState.SUCCEEDED, f"re_{refund_key}")

    async def _require(self, provider_ref: str) -> dict[str, Any]:
        row = await sandbox_repo.charge_by_ref(self._conn, provider_ref)
        if row is None:
            raise GatewayError(f"no such charge {provider_ref}")
        return row


def _outcome(row: dict[str, object]) -> ChargeOutcome:
    return ChargeOutcome(
        ChargeState(str(row["state"])),
        str(row["provider_ref"]),
        amount_captured_minor=int(str(row["captured_minor"])),
        decline_code=str(row["decline_code"]) if row["decline_code"] else None,
    )
