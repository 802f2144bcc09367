"""Khalti ePayment (KPG-2) adapter: initiate, redirect, lookup.

Documented protocol: ``POST /api/v2/epayment/initiate/`` with
``Authorization: Key <secret key>`` and JSON ``return_url, website_url,
amount`` (paisa) ``, purchase_order_id, purchase_order_name`` answers
``pidx`` and ``payment_url``; the customer pays on Khalti's page and comes
back to ``return_url``. The return is not signed, so the only truth is
``POST /api/v2/epayment/lookup/ {"pidx"}`` whose ``status`` is
``Completed``, ``Pending``, ``Initiated``, ``Refunded``, ``Expired``,
``User canceled`` or ``Partially Refunded``. Payments are captured at once
(no manual capture). The ePayment API offers no refund call, so a refund is
reported failed and must be made from the merchant dashboard.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

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

_LOOKUP: dict[str, ChargeState] = {
    "Completed": ChargeState.CAPTURED,
    "Refunded": ChargeState.CAPTURED,
    "Partially Refunded": ChargeState.CAPTURED,
    "Pending": ChargeState.PENDING,
    "Initiated": ChargeState.PENDING,
    "Expired": ChargeState.DECLINED,
    "User canceled": ChargeState.DECLINED,
}


class KhaltiGateway:
    name = "khalti"
    supports_manual_capture = False
    authorization_ttl = timedelta(minutes=60)

    def __init__(self, client: httpx.AsyncClient, *, secret_key: str, website_url: str) -> None:
        self._client = client
        self._auth = {"Authorization": f"Key {secret_key}"}
        self._website_url = website_url

    async def authorize(self, request: AuthorizeRequest, *, idempotency_key: str) -> ChargeOutcome:
        if request.amount.currency != "NPR":
            raise GatewayError("khalti settles only NPR")
        response = await send(
            self._client,
            "POST",
            "/api/v2/epayment/initiate/",
            headers=self._auth,
            json={
                "return_url": request.return_url,
                "website_url": self._website_url,
                "amount": request.amount.amount_minor,
                "purchase_order_id": str(request.intent_id),
                "purchase_order_name": request.description or f"NEARX payment {request.intent_id}",
            },
        )
        body = response.json()
        if response.status_code != 200:
            raise GatewayError(f"khalti refused the payment: {body}")
        return ChargeOutcome(
            ChargeState.REQUIRES_ACTION, body["pidx"], action_url=body["payment_url"], raw=body
        )

    async def retrieve(self, intent_id: uuid.UUID, provider_ref: str | None, amount: Money) -> ChargeOutcome:
        if provider_ref is None:
            return ChargeOutcome(ChargeState.NOT_FOUND)
        response = await send(
            self._client, "POST", "/api/v2/epayment/lookup/", headers=self._auth, json={"pidx": provider_ref}
        )
        body = response.json()
        if response.status_code == 404:
            return ChargeOutcome(ChargeState.NOT_FOUND)
        if response.status_code != 200:
            raise GatewayError(f"khalti lookup failed: {body}")
        state = _LOOKUP.get(body["status"], ChargeState.PENDING)
        if state == ChargeState.CAPTURED and body["total_amount"] != amount.amount_minor:
            raise GatewayError(f"khalti reports {body['total_amount']} paid, expected {amount.amount_minor}")
        captured = int(body["total_amount"]) if state == ChargeState.CAPTURED else 0
        decline = body["status"] if state == ChargeState.DECLINED else None
        return ChargeOutcome(
            state, provider_ref, amount_captured_minor=captured, decline_code=decline, raw=body
        )

    async def capture(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> ChargeOutcome:
        raise GatewayError("khalti captures at payment time")

    async def cancel(self, provider_ref: str, *, idempotency_key: str) -> ChargeOutcome:
        """An unpaid Khalti payment simply expires; nothing to call."""
        return ChargeOutcome(ChargeState.CANCELED, provider_ref)

    async def refund(self, provider_ref: str, amount: Money, *, idempotency_key: str) -> RefundOutcome:
        return RefundOutcome(RefundState.FAILED, failure_reason="khalti_epayment_has_no_refund_api")

    async def retrieve_refund(self, refund_key: str, provider_ref: str, amount: Money) -> RefundOutcome:
        return RefundOutcome(RefundState.FAILED, failure_reason="khalti_epayment_has_no_refund_api")
