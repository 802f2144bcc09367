"""Stripe adapter: PaymentIntents with manual capture, refunds, signed webhooks.

Speaks Stripe's documented REST API: form-encoded POSTs to
``/v1/payment_intents`` (``confirm=true``, ``capture_method=manual``),
``/v1/payment_intents/{id}/capture`` (``amount_to_capture``), ``/cancel``,
``/v1/refunds``; ``Authorization: Bearer <secret key>`` and an
``Idempotency-Key`` on every POST. A card decline is a 402 with
``error.type = card_error``. Webhooks carry ``Stripe-Signature: t=<unix>,v1=<hex>``
where v1 is HMAC-SHA256 of ``"<t>.<raw body>"`` with the endpoint secret.
A refund's fate is re-read by replaying its POST with the same
Idempotency-Key, which Stripe answers with the original result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    GatewayError,
    GatewayTimeout,
    RefundOutcome,
    RefundState,
    WebhookEvent,
)
from api.domains.payments.gateways.http import send
from nearx.clock import utc_now
from nearx.money import Money

_STATUS: dict[str, ChargeState] = {
    "requires_capture": ChargeState.AUTHORIZED,
    "succeeded": ChargeState.CAPTURED,
    "requires_action": ChargeState.REQUIRES_ACTION,
    "processing": ChargeState.PENDING,
    "requires_payment_method": ChargeState.DECLINED,
    "requires_confirmation": ChargeState.PENDING,
    "canceled": ChargeState.CANCELED,
}
_EVENTS: dict[str, ChargeState] = {
    "payment_intent.amount_capturable_updated": ChargeState.AUTHORIZED,
    "payment_intent.succeeded": ChargeState.CAPTURED,
    "payment_intent.canceled": ChargeState.CANCELED,
    "payment_intent.payment_failed": ChargeState.DECLINED,
    "payment_intent.requires_action": ChargeState.REQUIRES_ACTION,
}
SIGNATURE_TOLERANCE = timedelta(minutes=5)
"""Stripe's libraries default to five minutes; older signed payloads are treated as replays."""


class InvalidSignature(Exception):
    """A webhook whose signature or timestamp does not verify."""


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (what Stripe sends; used by fakes and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    payload: bytes,
    header: str,
    secret: str,
    *,
    now: datetime | None = None,
    tolerance: timedelta = SIGNATURE_TOLERANCE,
) -> None:
    """Raise :class:`InvalidSignature` unless one v1 signature matches and the timestamp is fresh."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("no timestamp in the Stripe-Signature header") from None
    expected = sign_payload(payload, secret, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise InvalidSignature("no v1 signature matches the payload")
    age = (now or utc_now()).timestamp() - timestamp
    if abs(age) > tolerance.total_seconds():
        raise InvalidSignature(f"the signature is {age:.0f}s old: outside the tolerance (a replay?)")


class StripeGateway:
    name = "stripe"
    supports_manual_capture = True

    def __init__(
        self, client: httpx.AsyncClient, *, secret_key: str, webhook_secret: str, authorization_days: int = 7
    ) -> None:
        self._client = client
        self._auth = {"Authorization": f"Bearer {secret_key}"}
        self._webhook_secret = webhook_secret
        self.authorization_ttl = timedelta(days=authorization_days)

    async def _post(
        self, path: str, form: dict[str, Any], idempotency_key: str
    ) -> tuple[int, dict[str, Any]]:
        response = await send(
            self._client, "POST", path, data=form, headers={**self._auth, "Idempotency-Key": idempotency_key}
        )
        body = response.json()
        if response.status_code == 409 and body.get("error", {}).get("type") == "idempotency_error":
            # the first attempt is still running at Stripe: its outcome is unknown, not a failure
            raise GatewayTimeout("stripe is still processing an earlier attempt with this key")
        return response.status_code, body

    def _charge(self, status: int, body: dict[str, Any]) -> ChargeOutcome:
        if status == 402 and body.get("error", {}).get("type") == "card_error":
            error = body["error"]
            ref = (error.get("payment_intent") or {}).get("id")
            return ChargeOutcome(
                ChargeState.DECLINED, ref, decline_code=error.get("decline_code") or error.get("code")
            )
        if status >= 400:
            raise GatewayError(f"stripe refused the request: {body.get('error', {}).get('message', status)}")
        state = _STATUS.get(body["status"], ChargeState.PENDING)
        error = body.get("last_payment_error") or {}
        action = ((body.get("next_action") or {}).get("redirect_to_url") or {}).get("url")
        return ChargeOutcome(
            state,
            body["id"],
            amount_captured_minor=int(body.get("amount_received") or 0),
            decline_code=error.get("decline_code") or error.get("code"),
            action_url=action,
            raw=body,
        )

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        form = {
            "amount": request.amount.amount_minor,
            "currency": request.amount.currency.lower(),
            "payment_method": request.payment_method,
            "confirm": "true",
            "capture_method": "automatic" if request.capture else "manual",
            "return_url": request.return_url,
            "metadata[nearx_intent_id]": str(request.intent_id),
        }
        return self._charge(*await self._post("/v1/payment_intents", form, idempotency_key))

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        form = {"amount_to_capture": amount.amount_minor}
        return self._charge(
            *await self._post(f"/v1/payment_intents/{provider_ref}/capture", form, idempotency_key)
        )

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        return self._charge(
            *await self._post(f"/v1/payment_intents/{provider_ref}/cancel", {}, idempotency_key)
        )

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        status, body = await self._post(
            "/v1/refunds", {"payment_intent": provider_ref, "amount": amount.amount_minor}, idempotency_key
        )
        if status >= 400:
            return RefundOutcome(
                RefundState.FAILED, failure_reason=body.get("error", {}).get("code", str(status))
            )
        state = {
            "succeeded": RefundState.SUCCEEDED,
            "failed": RefundState.FAILED,
            "canceled": RefundState.FAILED,
        }
        return RefundOutcome(
            state.get(body["status"], RefundState.PENDING), body["id"], body.get("failure_reason")
        )

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        if provider_ref is None:
            response = await send(
                self._client,
                "GET",
                "/v1/payment_intents/search",
                headers=self._auth,
                params={"query": f"metadata['nearx_intent_id']:'{intent_id}'"},
            )
            if response.status_code >= 400:
                raise GatewayError(f"stripe refused the search: {response.status_code}")
            found = response.json()["data"]
            if not found:
                return ChargeOutcome(ChargeState.NOT_FOUND)
            return self._charge(200, found[0])
        response = await send(self._client, "GET", f"/v1/payment_intents/{provider_ref}", headers=self._auth)
        if response.status_code == 404:
            return ChargeOutcome(ChargeState.NOT_FOUND)
        return self._charge(response.status_code, response.json())

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        return await self.refund(provider_ref, amount, idempotency_key=refund_key)

    def parse_webhook(
        self, payload: bytes, headers: dict[str, str], *, now: datetime | None = None
    ) -> WebhookEvent:
        """Verify and decode one webhook delivery (raises :class:`InvalidSignature`)."""
        verify_signature(payload, headers.get("stripe-signature", ""), self._webhook_secret, now=now)
        event = json.loads(payload)
        obj = event["data"]["object"]
        state = _EVENTS.get(event["type"])
        outcome = (
            None
            if state is None
            else ChargeOutcome(state, obj["id"], amount_captured_minor=int(obj.get("amount_received") or 0))
        )
        return WebhookEvent(
            event_id=event["id"], event_type=event["type"], provider_ref=obj["id"], outcome=outcome
        )
