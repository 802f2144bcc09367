"""Which gateways a request uses: the sandbox and the wallet always, real providers when configured.

Real adapters are added only when their credentials are set in ``Settings``,
so the default runtime never reaches the network. Each configured provider
gets its own HTTP client (base URL, timeouts), closed when the block ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from api.domains.payments.gateways.base import Gateway
from api.domains.payments.gateways.phonepe import PhonePeGateway
from api.domains.payments.gateways.sandbox import SandboxGateway
from api.domains.payments.gateways.stripe import StripeGateway
from api.domains.payments.gateways.wallet import WalletGateway
from nearx.db import Connection
from nearx.settings import Settings

PROVIDER_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def default_gateways(conn: Connection) -> dict[str, Gateway]:
    """The gateways bound to one connection (the sandbox and wallet keep their books in PostgreSQL)."""
    return {"sandbox": SandboxGateway(conn), "wallet": WalletGateway(conn)}


@asynccontextmanager
async def configured_gateways(conn: Connection, settings: Settings) -> AsyncIterator[dict[str, Gateway]]:
    """The default gateways plus every provider whose credentials are configured."""
    async with AsyncExitStack() as stack:
        gateways = default_gateways(conn)
        if settings.stripe_secret_key:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=settings.stripe_base_url, timeout=PROVIDER_TIMEOUT)
            )
            gateways["stripe"] = StripeGateway(
                client, secret_key=settings.stripe_secret_key, webhook_secret=settings.stripe_webhook_secret
            )
        if settings.phonepe_merchant_id:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=settings.phonepe_base_url, timeout=PROVIDER_TIMEOUT)
            )
            gateways["phonepe"] = PhonePeGateway(
                client,
                merchant_id=settings.phonepe_merchant_id,
                salt_key=settings.phonepe_salt_key,
                salt_index=settings.phonepe_salt_index,
                callback_url=f"{settings.payments_public_url}/v1/payment-webhooks/phonepe",
            )
        yield gateways
