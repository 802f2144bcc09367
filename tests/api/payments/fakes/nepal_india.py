"""Local fakes of Khalti ePayment, eSewa ePay v2 and PhonePe PG, following their documented shapes.

Each fake checks what the real provider checks (Khalti's ``Key`` token,
eSewa's base64 HMAC-SHA256 over ``signed_field_names``, PhonePe's
``X-VERIFY`` checksum), answers with the documented bodies and error codes,
and lets a test play the customer (pay, cancel) or the network (a slow answer).
Amount ``66_600`` paisa makes each fake answer too late.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar, Request, Response, get, post

from api.domains.payments.gateways.esewa import sign
from api.domains.payments.gateways.phonepe import checksum

SLOW_AMOUNT = 66_600
KHALTI_SECRET = "test_secret_key_fake"
ESEWA_SECRET = "8gBm/:&EnhH.1/q"  # eSewa's published UAT secret
ESEWA_PRODUCT = "EPAYTEST"
PHONEPE_MERCHANT = "PGTESTPAYUAT"
PHONEPE_SALT = "099eb0cd-02cf-4e2a-8aca-3e6c6aff0399"
PHONEPE_INDEX = 1


class FakeKhalti:
    def __init__(self) -> None:
        self.payments: dict[str, dict[str, Any]] = {}

    def pay(self, pidx: str) -> None:
        self.payments[pidx].update(status="Completed", transaction_id=uuid.uuid4().hex[:22])

    def cancel(self, pidx: str) -> None:
        self.payments[pidx]["status"] = "User canceled"

    def app(self) -> Litestar:
        fake = self

        def authorized(request: Request[Any, Any, Any]) -> bool:
            return request.headers.get("authorization") == f"Key {KHALTI_SECRET}"

        @post("/api/v2/epayment/initiate/", status_code=200)
        async def initiate(request: Request[Any, Any, Any]) -> Response[Any]:
            if not authorized(request):
                return Response({"detail": "Invalid token.", "status_code": 401}, status_code=401)
            body = await request.json()
            if body["amount"] < 1000:
                return Response(
                    {
                        "amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."],
                        "error_key": "validation_error",
                    },
                    status_code=400,
                )
            if body["amount"] == SLOW_AMOUNT:
                await asyncio.sleep(2)
            pidx = uuid.uuid4().hex[:22]
            fake.payments[pidx] = {
                "pidx": pidx,
                "total_amount": body["amount"],
                "status": "Initiated",
                "transaction_id": None,
                "fee": 0,
                "refunded": False,
                "purchase_order_id": body["purchase_order_id"],
            }
            return Response(
                {
                    "pidx": pidx,
                    "payment_url": f"https://test-pay.khalti.com/?pidx={pidx}",
                    "expires_at": "2026-11-25T16:26:16.471649+05:45",
                    "expires_in": 1800,
                }
            )

        @post("/api/v2/epayment/lookup/", status_code=200)
        async def lookup(request: Request[Any, Any, Any]) -> Response[Any]:
            if not authorized(request):
                return Response({"detail": "Invalid token.", "status_code": 401}, status_code=401)
            pidx = (await request.json())["pidx"]
            if pidx not in fake.payments:
                return Response({"detail": "Not found.", "error_key": "validation_error"}, status_code=404)
            return Response({k: v for k, v in fake.payments[pidx].items() if k != "purchase_order_id"})

        return Litestar([initiate, lookup])


class FakeEsewa:
    def __init__(self) -> None:
        self.transactions: dict[str, dict[str, Any]] = {}

    def app(self) -> Litestar:
        fake = self

        @post("/api/epay/main/v2/form", status_code=302)
        async def form(request: Request[Any, Any, Any]) -> Response[Any]:
            """The customer's browser posts the signed form; we play a successful payment."""
            fields = {k: str(v) for k, v in (await request.form()).items()}
            if sign(fields, fields["signed_field_names"], ESEWA_SECRET) != fields.get("signature"):
                return Response({"error": "Invalid payload signature."}, status_code=400)
            fake.transactions[fields["transaction_uuid"]] = {**fields, "status": "COMPLETE"}
            answer = {
                "transaction_code": uuid.uuid4().hex[:7].upper(),
                "status": "COMPLETE",
                "total_amount": fields["total_amount"],
                "transaction_uuid": fields["transaction_uuid"],
                "product_code": fields["product_code"],
                "signed_field_names": "transaction_code,status,total_amount,transaction_uuid,product_code,"
                "signed_field_names",
            }
            answer["signature"] = sign(answer, answer["signed_field_names"], ESEWA_SECRET)
            data = base64.b64encode(json.dumps(answer).encode()).decode()
            return Response(
                b"",
                status_code=302,
                headers={"Location": f"{fields['success_url']}?{urlencode({'data': data})}"},
            )

        @get("/api/epay/transaction/status/")
        async def status(request: Request[Any, Any, Any]) -> Response[Any]:
            params = request.query_params
            txn = fake.transactions.get(params["transaction_uuid"])
            if params["total_amount"] == str(SLOW_AMOUNT // 100):
                await asyncio.sleep(2)
            found = txn is not None and txn["total_amount"] == params["total_amount"]
            return Response(
                {
                    "product_code": params["product_code"],
                    "transaction_uuid": params["transaction_uuid"],
                    "total_amount": params["total_amount"],
                    "status": txn["status"] if found and txn else "NOT_FOUND",
                    "ref_id": uuid.uuid4().hex[:7] if found else None,
                }
            )

        return Litestar([form, status])


class FakePhonePe:
    def __init__(self) -> None:
        self.transactions: dict[str, dict[str, Any]] = {}

    def callback(
        self, merchant_transaction_id: str, *, code: str = "PAYMENT_SUCCESS", salt: str = PHONEPE_SALT
    ) -> tuple[bytes, dict[str, str]]:
        """Settle a payment as the customer would, and the server callback PhonePe posts for it."""
        txn = self.transactions[merchant_transaction_id]
        txn["code"] = code
        encoded = base64.b64encode(json.dumps(self._status_body(txn)).encode()).decode()
        return json.dumps({"response": encoded}).encode(), {
            "x-verify": checksum(encoded, salt, PHONEPE_INDEX)
        }

    @staticmethod
    def _status_body(txn: dict[str, Any]) -> dict[str, Any]:
        return {
            "success": txn["code"] == "PAYMENT_SUCCESS",
            "code": txn["code"],
            "message": txn["code"],
            "data": {
                "merchantId": PHONEPE_MERCHANT,
                "merchantTransactionId": txn["merchantTransactionId"],
                "transactionId": txn["transactionId"],
                "amount": txn["amount"],
                "state": "COMPLETED" if txn["code"] == "PAYMENT_SUCCESS" else "PENDING",
            },
        }

    def app(self) -> Litestar:
        fake = self
        refused = Response(
            {"success": False, "code": "AUTHORIZATION_FAILED", "message": "X-VERIFY header is incorrect"},
            status_code=401,
        )

        async def decoded(request: Request[Any, Any, Any], path: str) -> dict[str, Any] | None:
            encoded = (await request.json())["request"]
            if request.headers.get("x-verify") != checksum(encoded + path, PHONEPE_SALT, PHONEPE_INDEX):
                return None
            payload: dict[str, Any] = json.loads(base64.b64decode(encoded))
            return payload

        @post("/pg/v1/pay", status_code=200)
        async def pay(request: Request[Any, Any, Any]) -> Response[Any]:
            payload = await decoded(request, "/pg/v1/pay")
            if payload is None:
                return refused
            mtid = payload["merchantTransactionId"]
            fake.transactions[mtid] = {
                "merchantTransactionId": mtid,
                "amount": payload["amount"],
                "transactionId": f"T{uuid.uuid4().hex[:20]}",
                "code": "PAYMENT_PENDING",
            }
            if payload["amount"] == SLOW_AMOUNT:
                await asyncio.sleep(2)  # initiated, but the answer comes after the client gave up
            return Response(
                {
                    "success": True,
                    "code": "PAYMENT_INITIATED",
                    "message": "Payment initiated",
                    "data": {
                        "merchantId": PHONEPE_MERCHANT,
                        "merchantTransactionId": mtid,
                        "instrumentResponse": {
                            "type": "PAY_PAGE",
                            "redirectInfo": {
                                "url": f"https://mercury-uat.phonepe.com/transact/{mtid}",
                                "method": "GET",
                            },
                        },
                    },
                }
            )

        @post("/pg/v1/refund", status_code=200)
        async def refund(request: Request[Any, Any, Any]) -> Response[Any]:
            payload = await decoded(request, "/pg/v1/refund")
            if payload is None:
                return refused
            original = fake.transactions.get(payload["originalTransactionId"])
            ok = (
                original is not None
                and original["code"] == "PAYMENT_SUCCESS"
                and payload["amount"] <= original["amount"]
            )
            mtid = payload["merchantTransactionId"]
            fake.transactions[mtid] = {
                "merchantTransactionId": mtid,
                "amount": payload["amount"],
                "transactionId": f"R{uuid.uuid4().hex[:20]}",
                "code": "PAYMENT_SUCCESS" if ok else "PAYMENT_ERROR",
            }
            return Response(fake._status_body(fake.transactions[mtid]))

        @get("/pg/v1/status/{merchant_id:str}/{mtid:str}")
        async def status(merchant_id: str, mtid: str, request: Request[Any, Any, Any]) -> Response[Any]:
            path = f"/pg/v1/status/{merchant_id}/{mtid}"
            if request.headers.get("x-verify") != checksum(path, PHONEPE_SALT, PHONEPE_INDEX):
                return refused
            if mtid not in fake.transactions:
                return Response(
                    {"success": False, "code": "TRANSACTION_NOT_FOUND", "message": "No transaction"}
                )
            return Response(fake._status_body(fake.transactions[mtid]))

        return Litestar([pay, refund, status])
