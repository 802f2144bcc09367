"""Merchant webhooks: subscriptions, fan-out from the event stream, signed deliveries with retries.

Fan-out is an idempotent consumer of the PostgreSQL event stream: each event
becomes one delivery per matching subscription (unique per subscription and
event, so redelivery adds nothing). The sender posts the JSON body with
``X-Nearx-Signature: t=<unix>,v1=<hmac>`` and retries failures with
exponential backoff and jitter using ``tenacity``; every attempt is stored and
visible to the merchant. A delivery is processed under its row lock, so
parallel senders never post the same delivery at once.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import httpx
import msgspec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from api.domains.events import webhooks_repository as repo
from api.domains.events.model import Event
from api.domains.events.schemas import Attempt, Delivery, Webhook, WebhookCreated, WebhookInput
from api.domains.events.signing import SIGNATURE_HEADER, sign, subscription_secret
from api.domains.merchants import service as merchants
from api.errors import InvalidInput, NotFound
from api.security.principal import Principal
from nearx.db import Connection
from nearx.ids import new_id

MAX_ATTEMPTS = 5
DEFAULT_WAIT: wait_base = wait_exponential_jitter(initial=1, max=60)


class DeliveryFailed(Exception):
    """A non-2xx answer or a transport error; tenacity retries it."""


def _webhook_out(row: dict[str, Any]) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        event_types=list(row["event_types"]),
        active=row["active"],
        created_at=row["created_at"],
    )


async def subscribe(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, body: WebhookInput, *, pepper: str
) -> WebhookCreated:
    if len(set(body.event_types)) != len(body.event_types):
        raise InvalidInput("event types must not repeat")
    async with conn.transaction():
        merchant = await merchants.get_row(conn, merchant_id)
        await merchants.require_staff(conn, merchant_id, principal, merchants.MANAGERS)
        subscription_id = new_id()
        await repo.insert_subscription(
            conn,
            {
                "id": subscription_id,
                "merchant_id": merchant_id,
                "city_id": merchant["city_id"],
                "url": body.url,
                "event_types": list(body.event_types),
                "created_by": principal.user_id,
            },
        )
        row = await repo.get_subscription(conn, subscription_id)
        assert row is not None
    out = _webhook_out(row)
    return WebhookCreated(**msgspec.structs.asdict(out), secret=subscription_secret(pepper, subscription_id))


async def subscriptions(conn: Connection, principal: Principal, merchant_id: uuid.UUID) -> list[Webhook]:
    await merchants.require_staff(conn, merchant_id, principal, merchants.MANAGERS)
    return [_webhook_out(row) for row in await repo.subscriptions_of(conn, merchant_id)]


async def deliveries(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, subscription_id: uuid.UUID, limit: int
) -> list[Delivery]:
    await merchants.require_staff(conn, merchant_id, principal, merchants.MANAGERS)
    subscription = await repo.get_subscription(conn, subscription_id)
    if subscription is None or subscription["merchant_id"] != merchant_id:
        raise NotFound(f"webhook {subscription_id} was not found")
    rows = await repo.deliveries_of(conn, subscription_id, limit)
    attempts: dict[uuid.UUID, list[Attempt]] = defaultdict(list)
    for a in await repo.attempts_of(conn, [row["id"] for row in rows]):
        attempts[a["delivery_id"]].append(
            Attempt(
                attempt=a["attempt"],
                at=a["at"],
                status_code=a["status_code"],
                error=a["error"],
                duration_ms=a["duration_ms"],
            )
        )
    return [
        Delivery(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            status=row["status"],
            attempts=attempts[row["id"]],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )
        for row in rows
    ]


async def fan_out(conn: Connection, event: Event) -> None:
    """Consumer of the event stream: queue a delivery for each subscription of the event's merchant."""
    owner = event.payload.get("merchant_id") or event.payload.get("provider_id")
    if not owner:
        return
    body = {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.payload,
    }
    await repo.enqueue(conn, uuid.UUID(str(owner)), event.event_type, event.event_id, body)


async def _post(
    conn: Connection,
    client: httpx.AsyncClient,
    delivery: dict[str, Any],
    body: bytes,
    secret: str,
    attempt: int,
) -> None:
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        response = await client.post(
            delivery["url"],
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body, int(time.time())),
                "X-Nearx-Event": delivery["event_type"],
                "X-Nearx-Delivery": str(delivery["id"]),
            },
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    await repo.record_attempt(
        conn,
        delivery_id=delivery["id"],
        attempt=attempt,
        status_code=status_code,
        error=error,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    if error is not None:
        raise DeliveryFailed(error)


async def deliver_pending(
    conn: Connection,
    client: httpx.AsyncClient,
    *,
    pepper: str,
    limit: int = 100,
    max_attempts: int = MAX_ATTEMPTS,
    wait: wait_base = DEFAULT_WAIT,
) -> dict[str, int]:
    """Send pending deliveries; returns how many ended ``succeeded`` and ``failed``."""
    outcome = {"succeeded": 0, "failed": 0}
    for _ in range(limit):
        async with conn.transaction():
            claimed = await repo.claim_pending(conn, 1)
            if not claimed:
                break
            delivery = claimed[0]
            body = msgspec.json.encode(delivery["body"])
            secret = subscription_secret(pepper, delivery["subscription_id"])
            status = "succeeded"
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(max_attempts),
                    wait=wait,
                    retry=retry_if_exception_type(DeliveryFailed),
                    reraise=True,
                ):
                    with attempt:
                        number = delivery["attempts"] + attempt.retry_state.attempt_number
                        await _post(conn, client, delivery, body, secret, number)
            except DeliveryFailed:
                status = "failed"
            await repo.finish(conn, delivery["id"], status)
            outcome[status] += 1
    return outcome
