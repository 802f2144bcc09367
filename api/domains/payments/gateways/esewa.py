"""eSewa ePay v2 adapter: a signed form post, a signed redirect back, and the status check.

Documented protocol: the merchant signs ``total_amount,transaction_uuid,product_code``
(the ``signed_field_names``, in that order, as ``name=value`` joined by commas)
with HMAC-SHA256 and the merchant secret, base64-encoded, and the customer's
browser posts the form (``amount, tax_amount, total_amount, transaction_uuid,
product_code, product_service_charge, product_delivery_charge, success_url,
failure_url, signed_field_names, signature``) to ``/api/epay/main/v2/form``.
eSewa redirects to ``success_url`` with ``data`` = base64 JSON carrying its own
``signed_field_names`` and ``signature``. The status check
``GET /api/epay/transaction/status/?product_code=&total_amount=&transaction_uuid=``
answers ``COMPLETE``, ``PENDING``, ``FULL_REFUND``, ``PARTIAL_REFUND``,
``AMBIGUOUS``, ``NOT_FOUND`` or ``CANCELED``. Amounts are rupees as decimal text.
Refunds are not part of the public API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    GatewayError,
    RefundOutcome,
    RefundState,
)
from api.domains.payments.gateways.http import send
from nearx.money import Money

SIGNED_FIELDS = "total_amount,transaction_uuid,product_code"
_STATUS: dict[str, ChargeState] = {
    "COMPLETE": ChargeState.CAPTURED,
    "FULL_REFUND": ChargeState.CAPTURED,
    "PARTIAL_REFUND": ChargeState.CAPTURED,
    "PENDING": ChargeState.PENDING,
    "AMBIGUOUS": ChargeState.PENDING,
    "NOT_FOUND": ChargeState.NOT_FOUND,
    "CANCELED": ChargeState.DECLINED,
}


class InvalidSignature(Exception):
    """The redirect's signature does not match its fields."""


def rupees(amount: Money) -> str:
    """eSewa's decimal text: 10050 paisa -> "100.5", 10000 -> "100"."""
    value = Decimal(amount.amount_minor) / 100
    return format(value.normalize(), "f") if value != value.to_integral() else str(int(value))


def sign(fields: dict[str, str], signed_field_names: str, secret: str) -> str:
    message = ",".join(f"{name}={fields[name]}" for name in signed_field_names.split(","))
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


class EsewaGateway:
    name = "esewa"
    supports_manual_capture = False
    authorization_ttl = timedelta(minutes=60)

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secret_key: str,
        product_code: str,
        form_url: str,
        failure_url: str,
    ) -> None:
        self._client = client
        self._secret = secret_key
        self._product_code = product_code
        self._form_url = form_url
        self._failure_url = failure_url

    def form(self, request: AuthorizeRequest) -> dict[str, str]:
        """The signed form fields the customer's browser posts to eSewa."""
        total = rupees(request.amount)
        fields = {
            "amount": total,
            "tax_amount": "0",
            "total_amount": total,
            "transaction_uuid": str(request.intent_id),
            "product_code": self._product_code,
            "product_service_charge": "0",
            "product_delivery_charge": "0",
            "success_url": request.return_url,
            "failure_url": self._failure_url,
            "signed_field_names": SIGNED_FIELDS,
        }
        fields["signature"] = sign(fields, SIGNED_FIELDS, self._secret)
        return fields

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        if request.amount.currency != "NPR":
            raise GatewayError("esewa settles only NPR")
        fields = self.form(request)
        return ChargeOutcome(
            ChargeState.REQUIRES_ACTION,
            fields["transaction_uuid"],
            action_url=self._form_url,
            raw={"form": fields},
        )

    def verify_redirect(self, data: str) -> dict[str, Any]:
        """Decode and verify the ``data`` parameter eSewa appends to ``success_url``."""
        try:
            payload: dict[str, Any] = json.loads(base64.b64decode(data))
            expected = sign(
                {k: str(v) for k, v in payload.items()}, payload["signed_field_names"], self._secret
            )
        except (ValueError, KeyError) as exc:
            raise InvalidSignature(f"malformed eSewa response: {exc}") from exc
        if not hmac.compare_digest(expected, str(payload.get("signature", ""))):
            raise InvalidSignature("the eSewa response signature does not match")
        return payload

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        response = await send(
            self._client,
            "GET",
            "/api/epay/transaction/status/",
            params={
                "product_code": self._product_code,
                "total_amount": rupees(amount),
                "transaction_uuid": provider_ref or str(intent_id),
            },
        )
        if response.status_code != 200:
            raise GatewayError(f"esewa status check failed: {response.status_code}")
        body = response.json()
        state = _STATUS.get(body["status"], ChargeState.PENDING)
        captured = amount.amount_minor if state == ChargeState.CAPTURED else 0
        decline = body["status"] if state == ChargeState.DECLINED else None
        return ChargeOutcome(
            state,
            body.get("transaction_uuid") or provider_ref,
            amount_captured_minor=captured,
            decline_code=decline,
            raw=body,
        )

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        raise GatewayError("esewa captures at payment time")

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        return ChargeOutcome(ChargeState.CANCELED, provider_ref)

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        return RefundOutcome(RefundState.FAILED, failure_reason="esewa_has_no_public_refund_api")

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        return RefundOutcome(RefundState.FAILED, failure_reason="esewa_has_no_public_refund_api")
