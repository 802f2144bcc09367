"""Khalti, eSewa and PhonePe adapters against local fakes of their documented APIs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from api.domains.payments import service
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.gateways.esewa import EsewaGateway
from api.domains.payments.gateways.esewa import InvalidSignature as EsewaInvalidSignature
from api.domains.payments.gateways.khalti import KhaltiGateway
from api.domains.payments.gateways.phonepe import InvalidChecksum, PhonePeGateway
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.fakes.nepal_india import (
    ESEWA_PRODUCT,
    ESEWA_SECRET,
    KHALTI_SECRET,
    PHONEPE_INDEX,
    PHONEPE_MERCHANT,
    PHONEPE_SALT,
    SLOW_AMOUNT,
    FakeEsewa,
    FakeKhalti,
    FakePhonePe,
)
from tests.api.payments.fakes.server import serve
from tests.api.payments.helpers import assert_ledger_invariants

CUSTOMER = uuid.UUID(int=77)
RETURN = "https://nearx.invalid/payments/return"


async def _start(
    conn: Connection, gateways: dict[str, Gateway], provider: str, amount: Money
) -> dict[str, Any]:
    intent = await service.create_intent(
        conn,
        gateways,
        service.NewIntent(amount=amount, provider=provider, customer_id=CUSTOMER, capture_method="automatic"),
        actor="t",
    )
    return await service.confirm(conn, gateways, intent["id"], payment_method=provider, actor="t")


# --- Khalti -------------------------------------------------------------------------------------


@pytest.fixture
async def khalti() -> AsyncIterator[tuple[FakeKhalti, dict[str, Gateway]]]:
    fake = FakeKhalti()
    async with serve(fake.app()) as url, httpx.AsyncClient(base_url=url, timeout=0.3) as client:
        yield (
            fake,
            {"khalti": KhaltiGateway(client, secret_key=KHALTI_SECRET, website_url="https://nearx.invalid")},
        )


async def test_khalti_initiate_pay_lookup(
    conn: Connection, khalti: tuple[FakeKhalti, dict[str, Gateway]]
) -> None:
    fake, gateways = khalti
    intent = await _start(conn, gateways, "khalti", Money(25_000, "NPR"))
    assert intent["status"] == "requires_action"
    assert intent["action_url"].startswith("https://test-pay.khalti.com/?pidx=")
    still = await service.refresh(conn, gateways, intent["id"], actor="t")
    assert still["status"] == "requires_action"  # Initiated: the customer has not paid yet
    fake.pay(intent["provider_ref"])
    paid = await service.refresh(conn, gateways, intent["id"], actor="t")
    assert (paid["status"], paid["amount_captured"]) == ("succeeded", 25_000)
    await assert_ledger_invariants(conn)


async def test_khalti_cancel_decline_and_timeout(
    conn: Connection, khalti: tuple[FakeKhalti, dict[str, Gateway]]
) -> None:
    fake, gateways = khalti
    intent = await _start(conn, gateways, "khalti", Money(25_000, "NPR"))
    fake.cancel(intent["provider_ref"])
    canceled = await service.refresh(conn, gateways, intent["id"], actor="t")
    assert (canceled["status"], canceled["last_error"]) == ("requires_payment_method", "User canceled")
    too_small = await _start(conn, gateways, "khalti", Money(500, "NPR"))
    assert too_small["status"] == "requires_payment_method"  # Khalti's 400 validation_error
    slow = await _start(conn, gateways, "khalti", Money(SLOW_AMOUNT, "NPR"))
    assert slow["status"] == "processing"
    report = await service.reconcile(conn, gateways, older_than=timedelta(0))
    assert report.still_unknown >= 1  # no pidx came back: only the provider's dashboard can tell


async def test_khalti_refuses_a_wrong_key(
    conn: Connection, khalti: tuple[FakeKhalti, dict[str, Gateway]]
) -> None:
    _, gateways = khalti
    client = gateways["khalti"]._client  # type: ignore[attr-defined]
    wrong = {"khalti": KhaltiGateway(client, secret_key="nope", website_url="https://nearx.invalid")}
    intent = await _start(conn, wrong, "khalti", Money(25_000, "NPR"))
    assert intent["status"] == "requires_payment_method"
    assert "Invalid token" in intent["last_error"]


# --- eSewa --------------------------------------------------------------------------------------


@pytest.fixture
async def esewa() -> AsyncIterator[tuple[httpx.AsyncClient, EsewaGateway, dict[str, Gateway]]]:
    fake = FakeEsewa()
    async with serve(fake.app()) as url, httpx.AsyncClient(base_url=url, timeout=0.3) as client:
        gateway = EsewaGateway(
            client,
            secret_key=ESEWA_SECRET,
            product_code=ESEWA_PRODUCT,
            form_url=f"{url}/api/epay/main/v2/form",
            failure_url="https://nearx.invalid/fail",
        )
        yield client, gateway, {"esewa": gateway}


async def test_esewa_signed_form_redirect_and_status(
    conn: Connection, esewa: tuple[httpx.AsyncClient, EsewaGateway, dict[str, Gateway]]
) -> None:
    browser, gateway, gateways = esewa
    intent = await _start(conn, gateways, "esewa", Money(10_050, "NPR"))
    assert intent["status"] == "requires_action"
    form = gateway.form(_request(intent))
    assert form["total_amount"] == "100.5"
    posted = await browser.post(intent["action_url"], data=form)  # the customer's browser
    assert posted.status_code == 302
    data = parse_qs(urlparse(posted.headers["location"]).query)["data"][0]
    assert gateway.verify_redirect(data)["status"] == "COMPLETE"
    paid = await service.refresh(conn, gateways, intent["id"], actor="t")
    assert (paid["status"], paid["amount_captured"]) == ("succeeded", 10_050)
    await assert_ledger_invariants(conn)


async def test_esewa_refuses_tampered_forms_and_redirects(
    conn: Connection, esewa: tuple[httpx.AsyncClient, EsewaGateway, dict[str, Gateway]]
) -> None:
    browser, gateway, gateways = esewa
    intent = await _start(conn, gateways, "esewa", Money(10_000, "NPR"))
    form = gateway.form(_request(intent))
    tampered = await browser.post(intent["action_url"], data={**form, "total_amount": "1"})
    assert tampered.status_code == 400
    posted = await browser.post(intent["action_url"], data=form)
    data = parse_qs(urlparse(posted.headers["location"]).query)["data"][0]
    forged = data.replace(data[10], "A" if data[10] != "A" else "B", 1)
    with pytest.raises(EsewaInvalidSignature):
        gateway.verify_redirect(forged)


async def test_esewa_not_found_and_timeout(
    conn: Connection, esewa: tuple[httpx.AsyncClient, EsewaGateway, dict[str, Gateway]]
) -> None:
    _, _, gateways = esewa
    unpaid = await _start(conn, gateways, "esewa", Money(10_000, "NPR"))
    assert (await service.refresh(conn, gateways, unpaid["id"], actor="t"))["status"] == "requires_action"
    slow = await _start(conn, gateways, "esewa", Money(SLOW_AMOUNT, "NPR"))
    report = await service.reconcile(conn, gateways, older_than=timedelta(0))
    assert report.still_unknown == 2  # one NOT_FOUND yet, one status check that timed out
    assert (await service.get_intent(conn, slow["id"]))["status"] == "requires_action"


def _request(intent: dict[str, Any]) -> Any:
    from api.domains.payments.gateways.base import AuthorizeRequest

    return AuthorizeRequest(
        intent_id=intent["id"],
        amount=Money(intent["amount_minor"], intent["currency"]),
        payment_method="esewa",
        capture=True,
        return_url=RETURN,
    )


# --- PhonePe ------------------------------------------------------------------------------------


@pytest.fixture
async def phonepe() -> AsyncIterator[tuple[FakePhonePe, PhonePeGateway, dict[str, Gateway]]]:
    fake = FakePhonePe()
    async with serve(fake.app()) as url, httpx.AsyncClient(base_url=url, timeout=0.3) as client:
        gateway = PhonePeGateway(
            client,
            merchant_id=PHONEPE_MERCHANT,
            salt_key=PHONEPE_SALT,
            salt_index=PHONEPE_INDEX,
            callback_url="https://nearx.invalid/v1/payment-webhooks",
        )
        yield fake, gateway, {"phonepe": gateway}


async def test_phonepe_pay_callback_refund(
    conn: Connection, phonepe: tuple[FakePhonePe, PhonePeGateway, dict[str, Gateway]]
) -> None:
    fake, gateway, gateways = phonepe
    intent = await _start(conn, gateways, "phonepe", Money(50_000, "INR"))
    assert intent["status"] == "requires_action"
    assert "mercury-uat.phonepe.com" in intent["action_url"]
    body, headers = fake.callback(intent["provider_ref"])
    event = gateway.parse_callback(body, headers)
    assert await service.handle_webhook(conn, gateways, "phonepe", event) == "applied"
    assert (
        await service.handle_webhook(conn, gateways, "phonepe", event) == "duplicate"
    )  # a replayed callback
    paid = await service.get_intent(conn, intent["id"])
    assert (paid["status"], paid["amount_captured"]) == ("succeeded", 50_000)
    refund = await service.refund(
        conn,
        gateways,
        intent["id"],
        amount=Money(20_000, "INR"),
        bearer="merchant",
        request_key="r1",
        actor="t",
    )
    assert refund["status"] == "succeeded"
    await assert_ledger_invariants(conn)


async def test_phonepe_bad_checksum_decline_and_timeout(
    conn: Connection, phonepe: tuple[FakePhonePe, PhonePeGateway, dict[str, Gateway]]
) -> None:
    fake, gateway, gateways = phonepe
    intent = await _start(conn, gateways, "phonepe", Money(50_000, "INR"))
    forged_body, forged_headers = fake.callback(intent["provider_ref"], salt="not-our-salt")
    with pytest.raises(InvalidChecksum):
        gateway.parse_callback(forged_body, forged_headers)
    fake.callback(intent["provider_ref"], code="PAYMENT_ERROR")
    declined = await service.refresh(conn, gateways, intent["id"], actor="t")
    assert (declined["status"], declined["last_error"]) == ("requires_payment_method", "PAYMENT_ERROR")
    wrong_salt = PhonePeGateway(
        gateway._client,
        merchant_id=PHONEPE_MERCHANT,
        salt_key="wrong",  # type: ignore[attr-defined]
        salt_index=PHONEPE_INDEX,
        callback_url="https://nearx.invalid/cb",
    )
    refused = await _start(conn, {"phonepe": wrong_salt}, "phonepe", Money(50_000, "INR"))
    assert "AUTHORIZATION_FAILED" in refused["last_error"]
    slow = await _start(conn, gateways, "phonepe", Money(SLOW_AMOUNT, "INR"))
    assert slow["status"] == "processing"
    fake.callback(slow["provider_ref"] or slow["id"].hex)
    await service.reconcile(conn, gateways, older_than=timedelta(0))
    assert (await service.get_intent(conn, slow["id"]))["status"] == "succeeded"
