"""HTTP surface of payment intents: create, confirm, capture, cancel, refund, read."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeAlias

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody, SkipValidation

from api.domains.payments import service
from api.domains.payments.fraud import FraudScorer
from api.domains.payments.gateways.base import GatewayError, GatewayTimeout
from api.domains.payments.gateways.phonepe import InvalidChecksum, PhonePeGateway
from api.domains.payments.gateways.registry import configured_gateways
from api.domains.payments.gateways.stripe import InvalidSignature, StripeGateway
from api.domains.payments.idempotent import run_once
from api.domains.payments.schemas import (
    CancelIn,
    CaptureIn,
    ConfirmIn,
    CreateIntentIn,
    IntentOut,
    RefundIn,
    RefundOut,
)
from api.errors import DomainError, NotFound
from api.idempotency import IDEMPOTENCY_HEADER
from api.schemas import Output
from api.security.guards import requires_role
from api.security.principal import PRIVILEGED_ROLES, Principal, Role
from nearx.db import Connection
from nearx.settings import Settings

IdempotencyKey: TypeAlias = Annotated[
    str | None,
    HeaderParameter(name=IDEMPOTENCY_HEADER, required=False, description="Retries replay the first response"),
]


ScorerDependency: TypeAlias = NamedDependency[SkipValidation[FraudScorer]]
"""The composed fraud scorer; a Protocol, so the signature model must not try to validate it."""


class BadSignature(DomainError):
    """A webhook whose signature, checksum or timestamp does not verify (forged or replayed)."""

    status = 400
    slug = "bad-signature"


def _is_staff(principal: Principal) -> bool:
    return principal.mfa and not principal.roles.isdisjoint(PRIVILEGED_ROLES)


async def _owned(conn: Connection, intent_id: FromPath[uuid.UUID], principal: Principal) -> dict[str, Any]:
    """The intent if the caller owns it (or is staff); otherwise a 404 that leaks nothing."""
    row = await service.get_intent(conn, intent_id)
    if row["customer_id"] != principal.user_id and not _is_staff(principal):
        raise NotFound("no such payment intent")
    return row


def provide_fraud_scorer(state: State) -> FraudScorer:
    """The scorer the app was composed with (``app.state.fraud_scorer``, set in ``create_app``)."""
    scorer: FraudScorer = state.fraud_scorer
    return scorer


class ProviderUnavailable(DomainError):
    """The provider did not answer in time; the intent is unchanged (try again, or wait for reconcile)."""

    status = 503
    slug = "provider-unavailable"


class PaymentIntentController(Controller):
    path = "/v1/payment-intents"
    tags = ["payments"]  # noqa: RUF012
    dependencies = {"fraud_scorer": Provide(provide_fraud_scorer, sync_to_thread=False)}  # noqa: RUF012

    @post("/", operation_id="createPaymentIntent", summary="Create a payment intent")
    async def create(
        self,
        data: JSONBody[CreateIntentIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> IntentOut:
                amount = service.money(data.amount_minor, data.currency)
                if data.order_id is not None:
                    await service.check_order_payment(conn, data.order_id, principal.user_id, amount)
                new = service.NewIntent(
                    amount=amount,
                    provider=data.provider,
                    purpose=data.purpose,
                    capture_method=data.capture_method,
                    customer_id=principal.user_id,
                    order_id=data.order_id,
                    city_id=data.city_id,
                    payment_method=data.payment_method,
                )
                row = await service.create_intent(conn, gateways, new, actor=f"user:{principal.user_id}")
                return IntentOut.of(row)

            return await run_once(
                conn,
                scope=f"payment_intents.create:{principal.user_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
                status=201,
            )

    @get("/{intent_id:uuid}", operation_id="getPaymentIntent", summary="Read a payment intent")
    async def read(
        self,
        intent_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> IntentOut:
        return IntentOut.of(await _owned(conn, intent_id, principal))

    @post(
        "/{intent_id:uuid}/confirm", operation_id="confirmPaymentIntent", summary="Authorize at the provider"
    )
    async def confirm(
        self,
        intent_id: FromPath[uuid.UUID],
        data: JSONBody[ConfirmIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        fraud_scorer: ScorerDependency,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        """A step-up decision needs a second factor in the session (``Principal.mfa``): without
        one, confirming again is a 403 ``step-up-required`` and the intent stays in requires_action."""
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> IntentOut:
                await _owned(conn, intent_id, principal)
                row = await service.confirm(
                    conn,
                    gateways,
                    intent_id,
                    payment_method=data.payment_method,
                    actor=f"user:{principal.user_id}",
                    scorer=fraud_scorer,
                    second_factor=principal.mfa,
                )
                return IntentOut.of(row)

            return await run_once(
                conn,
                scope=f"payment_intents.confirm:{intent_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
            )

    @post(
        "/{intent_id:uuid}/refresh",
        operation_id="refreshPaymentIntent",
        summary="Ask the provider for the intent's state now (back from a redirect checkout)",
        status_code=200,
    )
    async def refresh(
        self,
        intent_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> IntentOut:
        """Safe to repeat: applying the provider's report is monotonic (nothing moves backwards)."""
        await _owned(conn, intent_id, principal)
        async with configured_gateways(conn, settings) as gateways:
            try:
                row = await service.refresh(conn, gateways, intent_id, actor=f"user:{principal.user_id}")
            except (GatewayTimeout, GatewayError) as exc:
                raise ProviderUnavailable(f"the provider did not answer: {exc}") from exc
        return IntentOut.of(row)

    @post(
        "/{intent_id:uuid}/capture",
        operation_id="capturePaymentIntent",
        summary="Capture all or part of an authorization",
        guards=[requires_role(Role.ADMIN, Role.SUPPORT)],
    )
    async def capture(
        self,
        intent_id: FromPath[uuid.UUID],
        data: JSONBody[CaptureIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> IntentOut:
                row = await service.get_intent(conn, intent_id)
                amount = (
                    None
                    if data.amount_minor is None
                    else service.money(data.amount_minor, data.currency or row["currency"])
                )
                done = await service.capture(
                    conn, gateways, intent_id, amount=amount, actor=f"user:{principal.user_id}"
                )
                return IntentOut.of(done)

            return await run_once(
                conn,
                scope=f"payment_intents.capture:{intent_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
            )

    @post(
        "/{intent_id:uuid}/cancel",
        operation_id="cancelPaymentIntent",
        summary="Cancel or void before capture",
    )
    async def cancel(
        self,
        intent_id: FromPath[uuid.UUID],
        data: JSONBody[CancelIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> IntentOut:
                await _owned(conn, intent_id, principal)
                row = await service.cancel(
                    conn, gateways, intent_id, actor=f"user:{principal.user_id}", reason=data.reason
                )
                return IntentOut.of(row)

            return await run_once(
                conn,
                scope=f"payment_intents.cancel:{intent_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
            )

    @post(
        "/{intent_id:uuid}/refunds",
        operation_id="refundPaymentIntent",
        summary="Refund part or all of a capture",
        guards=[requires_role(Role.ADMIN, Role.SUPPORT)],
    )
    async def refund(
        self,
        intent_id: FromPath[uuid.UUID],
        data: JSONBody[RefundIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> RefundOut:
                row = await service.refund(
                    conn,
                    gateways,
                    intent_id,
                    amount=service.money(data.amount_minor, data.currency),
                    bearer=data.bearer,
                    request_key=f"http:{idempotency_key}",
                    actor=f"user:{principal.user_id}",
                    reason=data.reason,
                )
                return RefundOut.of(row)

            return await run_once(
                conn,
                scope=f"payment_intents.refund:{intent_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
                status=201,
            )


class WebhookResultOut(Output):
    result: str


class PaymentWebhookController(Controller):
    """Provider notifications: public (the provider cannot hold a token) but signature-verified."""

    path = "/v1/payment-webhooks"
    tags = ["payments"]  # noqa: RUF012

    @post(
        "/{provider:str}",
        operation_id="receivePaymentWebhook",
        summary="Receive a provider webhook",
        opt={"public": True},
        status_code=200,
    )
    async def receive(
        self,
        provider: FromPath[str],
        request: Request[Any, Any, Any],
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
    ) -> WebhookResultOut:
        payload = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        async with configured_gateways(conn, settings) as gateways:
            gateway = gateways.get(provider)
            try:
                if isinstance(gateway, StripeGateway):
                    event = gateway.parse_webhook(payload, headers)
                elif isinstance(gateway, PhonePeGateway):
                    event = gateway.parse_callback(payload, headers)
                else:
                    raise NotFound(f"no webhooks are configured for {provider!r}")
            except (InvalidSignature, InvalidChecksum) as exc:
                raise BadSignature(str(exc)) from exc
            return WebhookResultOut(result=await service.handle_webhook(conn, gateways, provider, event))
