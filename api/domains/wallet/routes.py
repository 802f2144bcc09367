"""HTTP surface of the caller's own NEARX wallet: balance and limits, top-ups, payments."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from api.domains.payments import service as payments
from api.domains.payments.gateways.registry import configured_gateways
from api.domains.payments.idempotent import run_once
from api.domains.payments.routes import IdempotencyKey, ScorerDependency, provide_fraud_scorer
from api.domains.payments.schemas import IntentOut
from api.domains.wallet import service
from api.domains.wallet.schemas import TopUpIn, WalletOut, WalletPayIn, WalletPaymentOut
from api.errors import InvalidInput
from api.security.principal import Principal
from nearx.db import Connection
from nearx.money import UnknownCurrency, validate_currency
from nearx.settings import Settings


class WalletController(Controller):
    path = "/v1/wallet"
    tags = ["wallet"]  # noqa: RUF012
    dependencies = {"fraud_scorer": Provide(provide_fraud_scorer, sync_to_thread=False)}  # noqa: RUF012

    @get("/", operation_id="getWallet", summary="My wallet: balance, holds and KYC limits")
    async def read(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        currency: Annotated[str, QueryParameter(pattern="^[A-Z]{3}$")] = "NPR",
    ) -> WalletOut:
        try:
            validate_currency(currency)
        except UnknownCurrency as exc:
            raise InvalidInput(str(exc)) from exc
        view = await service.view(conn, principal.user_id, currency)
        return WalletOut(**{field: getattr(view, field) for field in WalletOut.__struct_fields__})

    @post("/top-ups", operation_id="topUpWallet", summary="Top up my wallet with a card")
    async def top_up(
        self,
        data: JSONBody[TopUpIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        fraud_scorer: ScorerDependency,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> IntentOut:
                amount = payments.money(data.amount_minor, data.currency)
                row = await service.top_up(
                    conn,
                    gateways,
                    principal.user_id,
                    amount,
                    payment_method=data.payment_method,
                    scorer=fraud_scorer,
                    second_factor=principal.mfa,
                )
                return IntentOut.of(row)

            return await run_once(
                conn,
                scope=f"wallet.top_up:{principal.user_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
                status=201,
            )

    @post("/payments", operation_id="payWithWallet", summary="Pay from my wallet, a card paying the rest")
    async def pay(
        self,
        data: JSONBody[WalletPayIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        fraud_scorer: ScorerDependency,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        async with configured_gateways(conn, settings) as gateways:

            async def operation() -> WalletPaymentOut:
                amount = payments.money(data.amount_minor, data.currency)
                if data.order_id is not None:
                    await payments.check_order_payment(conn, data.order_id, principal.user_id, amount)
                rows = await service.pay(
                    conn,
                    gateways,
                    principal.user_id,
                    amount,
                    card_payment_method=data.card_payment_method,
                    order_id=data.order_id,
                    scorer=fraud_scorer,
                    second_factor=principal.mfa,
                )
                return WalletPaymentOut(intents=[IntentOut.of(row) for row in rows])

            return await run_once(
                conn,
                scope=f"wallet.pay:{principal.user_id}",
                key=idempotency_key,
                body=data,
                operation=operation,
                status=201,
            )
