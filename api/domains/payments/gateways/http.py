"""HTTP transport shared by the provider adapters: timeouts, bounded retries, unknown outcomes.

Retries (tenacity, exponential back-off) cover connection failures and
timeouts only; the adapters send an idempotency key or a merchant reference
with every money-moving request, so a retry can never charge twice. When the
retries run out the outcome is unknown and :class:`GatewayTimeout` is raised:
the intent stays in processing for reconciliation.
"""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from api.domains.payments.gateways.base import GatewayTimeout


class ProviderUnavailable(Exception):
    """A 5xx from the provider: it may or may not have acted, so it is retried like a timeout."""


async def send(
    client: httpx.AsyncClient, method: str, url: str, *, attempts: int = 3, **kwargs: Any
) -> httpx.Response:
    """One request with bounded retries; :class:`GatewayTimeout` when the provider never answered."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type((httpx.TransportError, ProviderUnavailable)),
            reraise=True,
        ):
            with attempt:
                response = await client.request(method, url, **kwargs)
                if response.status_code >= 500:
                    raise ProviderUnavailable(f"{response.status_code} from {url}")
    except (httpx.TransportError, ProviderUnavailable) as exc:
        raise GatewayTimeout(f"no usable answer from {url}: {exc!r}") from exc
    return response
