"""A local fake of Stripe's PaymentIntents and Refunds API, following its documented shapes.

Test payment methods: ``pm_card_visa`` succeeds, ``pm_card_chargeDeclined``
is a 402 card_error, ``pm_card_timeout`` is processed and then answered too
late. Wrong keys are a 401; a reused Idempotency-Key replays the first
response, or is a 400 ``idempotency_error`` when the parameters differ.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from litestar import Litestar, Request, Response, get, post

from api.domains.payments.gateways.stripe import sign_payload

SECRET_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_fake"


class FakeStripe:
    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self.in_flight: set[str] = set()
        self.requests = 0

    def event(
        self,
        event_type: str,
        intent_id: str,
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
        secret: str = WEBHOOK_SECRET,
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery as Stripe would send it: JSON body and its Stripe-Signature header."""
        body = json.dumps(
            {
                "id": event_id or f"evt_{uuid.uuid4().hex}",
                "object": "event",
                "type": event_type,
                "data": {"object": self.intents[intent_id]},
            }
        ).encode()
        header = sign_payload(body, secret, timestamp or int(time.time()))
        return body, {"stripe-signature": header}

    def app(self) -> Litestar:
        fake = self

        def error(status: int, kind: str, code: str, message: str, **extra: Any) -> Response[Any]:
            body = {"error": {"type": kind, "code": code, "message": message, **extra}}
            return Response(body, status_code=status)

        async def guarded(request: Request[Any, Any, Any], handler: Any) -> Response[Any]:
            fake.requests += 1
            if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
                return error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided")
            form = {key: str(value) for key, value in (await request.form()).items()}
            key = request.headers.get("idempotency-key")
            if key and key in fake.in_flight:
                return error(
                    409,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "There is currently another in-progress request using this Idempotency Key",
                )
            if key and key in fake.idempotency:
                previous, status, body = fake.idempotency[key]
                if previous != form:
                    return error(
                        400,
                        "idempotency_error",
                        "idempotency_key_in_use",
                        "Keys for idempotent requests can only be used with the same parameters",
                    )
                return Response(body, status_code=status, headers={"Idempotent-Replayed": "true"})
            if key:
                fake.in_flight.add(key)
            try:
                status, body = await handler(form)
            finally:
                fake.in_flight.discard(key or "")
            if key:
                fake.idempotency[key] = (form, status, body)
            return Response(body, status_code=status)

        @post("/v1/payment_intents", status_code=200)
        async def create(request: Request[Any, Any, Any]) -> Response[Any]:
            async def handle(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
                pid = f"pi_{uuid.uuid4().hex[:24]}"
                manual = form.get("capture_method") == "manual"
                intent: dict[str, Any] = {
                    "id": pid,
                    "object": "payment_intent",
                    "amount": int(form["amount"]),
                    "currency": form["currency"],
                    "capture_method": form.get("capture_method", "automatic"),
                    "metadata": {"nearx_intent_id": form.get("metadata[nearx_intent_id]")},
                    "amount_received": 0,
                    "amount_refunded": 0,
                    "last_payment_error": None,
                    "next_action": None,
                }
                fake.intents[pid] = intent
                if form["payment_method"] == "pm_card_chargeDeclined":
                    intent["status"] = "requires_payment_method"
                    intent["last_payment_error"] = {
                        "code": "card_declined",
                        "decline_code": "generic_decline",
                    }
                    return 402, {
                        "error": {
                            "type": "card_error",
                            "code": "card_declined",
                            "decline_code": "generic_decline",
                            "message": "Your card was declined.",
                            "payment_intent": intent,
                        }
                    }
                intent["status"] = "requires_capture" if manual else "succeeded"
                intent["amount_received"] = 0 if manual else intent["amount"]
                if form["payment_method"] == "pm_card_timeout":
                    await asyncio.sleep(2)  # processed, but the answer comes after the client gave up
                return 200, intent

            return await guarded(request, handle)

        @post("/v1/payment_intents/{pid:str}/capture", status_code=200)
        async def capture(pid: str, request: Request[Any, Any, Any]) -> Response[Any]:
            async def handle(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
                intent = fake.intents[pid]
                amount = int(form.get("amount_to_capture", intent["amount"]))
                if intent["status"] != "requires_capture":
                    return 400, {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "payment_intent_unexpected_state",
                            "message": f"status {intent['status']}",
                        }
                    }
                if amount > intent["amount"]:
                    return 400, {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "amount_too_large",
                            "message": "amount_to_capture exceeds the amount capturable",
                        }
                    }
                intent.update(status="succeeded", amount_received=amount)
                return 200, intent

            return await guarded(request, handle)

        @post("/v1/payment_intents/{pid:str}/cancel", status_code=200)
        async def cancel(pid: str, request: Request[Any, Any, Any]) -> Response[Any]:
            async def handle(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
                fake.intents[pid]["status"] = "canceled"
                return 200, fake.intents[pid]

            return await guarded(request, handle)

        @post("/v1/refunds", status_code=200)
        async def refund(request: Request[Any, Any, Any]) -> Response[Any]:
            async def handle(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
                intent = fake.intents[form["payment_intent"]]
                amount = int(form["amount"])
                if amount > intent["amount_received"] - intent["amount_refunded"]:
                    return 400, {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "amount_too_large",
                            "message": "Refund amount is greater than unrefunded amount",
                        }
                    }
                intent["amount_refunded"] += amount
                rid = f"re_{uuid.uuid4().hex[:24]}"
                fake.refunds[rid] = {
                    "id": rid,
                    "object": "refund",
                    "amount": amount,
                    "status": "succeeded",
                    "payment_intent": intent["id"],
                }
                return 200, fake.refunds[rid]

            return await guarded(request, handle)

        @get("/v1/payment_intents/search")
        async def search(request: Request[Any, Any, Any]) -> Response[Any]:
            wanted = request.query_params["query"].split(":", 1)[1].strip("'")
            found = [i for i in fake.intents.values() if i["metadata"]["nearx_intent_id"] == wanted]
            return Response({"object": "search_result", "data": found})

        @get("/v1/payment_intents/{pid:str}")
        async def read(pid: str) -> Response[Any]:
            if pid not in fake.intents:
                return error(
                    404, "invalid_request_error", "resource_missing", f"No such payment_intent: '{pid}'"
                )
            return Response(fake.intents[pid])

        return Litestar([create, capture, cancel, refund, search, read], debug=False)
