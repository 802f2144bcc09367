"""PhonePe PG (standard checkout v1) adapter: checksummed pay, status, refund and callback.

Documented protocol: the JSON payload is base64-encoded and posted as
``{"request": <base64>}`` to ``/pg/v1/pay`` with
``X-VERIFY = SHA256(base64 + "/pg/v1/pay" + salt key) + "###" + salt index``;
the answer carries the pay-page URL in
``data.instrumentResponse.redirectInfo.url``. Status is
``GET /pg/v1/status/{merchantId}/{merchantTransactionId}`` with
``X-VERIFY = SHA256(path + salt key) + "###" + index`` and ``X-MERCHANT-ID``;
``code`` is ``PAYMENT_SUCCESS``, ``PAYMENT_PENDING``, ``PAYMENT_ERROR``,
``PAYMENT_DECLINED`` … Server callbacks post ``{"response": <base64>}`` with
``X-VERIFY = SHA256(base64 + salt key) + "###" + index``. Refunds go to
``/pg/v1/refund`` and are themselves transactions whose status is read the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx

from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    GatewayError,
    RefundOutcome,
    RefundState,
    WebhookEvent,
)
from api.domains.payments.gateways.http import send
from nearx.money import Money

_CODES: dict[str, ChargeState] = {
    "PAYMENT_SUCCESS": ChargeState.CAPTURED,
    "PAYMENT_PENDING": ChargeState.PENDING,
    "INTERNAL_SERVER_ERROR": ChargeState.PENDING,
    "PAYMENT_ERROR": ChargeState.DECLINED,
    "PAYMENT_DECLINED": ChargeState.DECLINED,
    "TIMED_OUT": ChargeState.DECLINED,
    "TRANSACTION_NOT_FOUND": ChargeState.NOT_FOUND,
}


class InvalidChecksum(Exception):
    """An X-VERIFY header that does not match the body."""


def checksum(text: str, salt_key: str, salt_index: int) -> str:
    return hashlib.sha256((text + salt_key).encode()).hexdigest() + f"###{salt_index}"


def transaction_id(intent_id: uuid.UUID) -> str:
    """PhonePe wants under 35 characters of [A-Za-z0-9_-]: the intent's hex (32)."""
    return intent_id.hex


class PhonePeGateway:
    name = "phonepe"
    supports_manual_capture = False
    authorization_ttl = timedelta(minutes=20)

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        merchant_id: str,
        salt_key: str,
        salt_index: int,
        callback_url: str,
    ) -> None:
        self._client = client
        self._merchant_id = merchant_id
        self._salt_key = salt_key
        self._salt_index = salt_index
        self._callback_url = callback_url

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        encoded = base64.b64encode(json.dumps(payload).encode()).decode()
        response = await send(
            self._client,
            "POST",
            path,
            json={"request": encoded},
            headers={"X-VERIFY": checksum(encoded + path, self._salt_key, self._salt_index)},
        )
        body: dict[str, Any] = response.json()
        return body

    async def _status(self, merchant_transaction_id: str) -> dict[str, Any]:
        path = f"/pg/v1/status/{self._merchant_id}/{merchant_transaction_id}"
        response = await send(
            self._client,
            "GET",
            path,
            headers={
                "X-VERIFY": checksum(path, self._salt_key, self._salt_index),
                "X-MERCHANT-ID": self._merchant_id,
            },
        )
        body: dict[str, Any] = response.json()
        return body

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        if request.amount.currency != "INR":
            raise GatewayError("phonepe settles only INR")
        body = await self._post(
            "/pg/v1/pay",
            {
                "merchantId": self._merchant_id,
                "merchantTransactionId": transaction_id(request.intent_id),
                "merchantUserId": (request.customer_id or request.intent_id).hex,
                "amount": request.amount.amount_minor,
                "redirectUrl": request.return_url,
                "redirectMode": "REDIRECT",
                "callbackUrl": self._callback_url,
                "paymentInstrument": {"type": "PAY_PAGE"},
            },
        )
        if not body.get("success"):
            raise GatewayError(f"phonepe refused the payment: {body.get('code')}: {body.get('message')}")
        url = body["data"]["instrumentResponse"]["redirectInfo"]["url"]
        return ChargeOutcome(
            ChargeState.REQUIRES_ACTION, transaction_id(request.intent_id), action_url=url, raw=body
        )

    def _outcome(self, body: dict[str, Any], amount: Money | None) -> ChargeOutcome:
        state = _CODES.get(body.get("code", ""), ChargeState.PENDING)
        data = body.get("data") or {}
        if state == ChargeState.CAPTURED and amount is not None and data.get("amount") != amount.amount_minor:
            raise GatewayError(f"phonepe reports {data.get('amount')} paid, expected {amount.amount_minor}")
        captured = int(data.get("amount", 0)) if state == ChargeState.CAPTURED else 0
        decline = body.get("code") if state == ChargeState.DECLINED else None
        return ChargeOutcome(
            state,
            data.get("merchantTransactionId"),
            amount_captured_minor=captured,
            decline_code=decline,
            raw=body,
        )

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        return self._outcome(await self._status(provider_ref or transaction_id(intent_id)), amount)

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        raise GatewayError("phonepe captures at payment time")

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        return ChargeOutcome(ChargeState.CANCELED, provider_ref)

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        refund_id = _refund_transaction_id(idempotency_key)
        body = await self._post(
            "/pg/v1/refund",
            {
                "merchantId": self._merchant_id,
                "merchantUserId": provider_ref,
                "originalTransactionId": provider_ref,
                "merchantTransactionId": refund_id,
                "amount": amount.amount_minor,
                "callbackUrl": self._callback_url,
            },
        )
        return _refund_outcome(body, refund_id)

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        refund_id = _refund_transaction_id(refund_key)
        return _refund_outcome(await self._status(refund_id), refund_id)

    def parse_callback(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        """Verify the X-VERIFY of a server callback and decode it (raises :class:`InvalidChecksum`)."""
        try:
            encoded = json.loads(payload)["response"]
        except (ValueError, KeyError) as exc:
            raise InvalidChecksum(f"malformed callback: {exc}") from exc
        expected = checksum(encoded, self._salt_key, self._salt_index)
        if not hmac.compare_digest(expected, headers.get("x-verify", "")):
            raise InvalidChecksum("the X-VERIFY checksum does not match the callback")
        body = json.loads(base64.b64decode(encoded))
        outcome = self._outcome(body, None)
        data = body.get("data") or {}
        event_id = f"{data.get('transactionId') or data.get('merchantTransactionId')}:{body.get('code')}"
        return WebhookEvent(
            event_id=event_id,
            event_type=str(body.get("code")),
            provider_ref=str(data.get("merchantTransactionId")),
            outcome=outcome,
        )


def _refund_transaction_id(refund_key: str) -> str:
    return hashlib.sha256(refund_key.encode()).hexdigest()[:32]


def _refund_outcome(body: dict[str, Any], refund_id: str) -> RefundOutcome:
    code = body.get("code", "")
    if code == "PAYMENT_SUCCESS":
        return RefundOutcome(RefundState.SUCCEEDED, refund_id)
    if code in ("PAYMENT_PENDING", "INTERNAL_SERVER_ERROR"):
        return RefundOutcome(RefundState.PENDING, refund_id)
    return RefundOutcome(RefundState.FAILED, refund_id, failure_reason=code or "unknown")
