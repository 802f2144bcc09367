"""Merchant webhooks: subscriptions, fan-out from the event stream, signed deliveries with retries.

Fan-out is an idempotent consumer of the event bus: each event becomes one
delivery per matching subscription (unique per subscription and event, so
redelivery adds nothing). The sender posts the JSON body with
``X-Nearx-Signature: t=<unix>,v1=<hmac>``; every attempt is stored and visible
to the merchant. Retries follow a persistent schedule: a failed attempt sets
``next_attempt_at`` (exponential backoff with jitter) and releases the row, so a
dead endpoint never holds the sender, its connection or the row lock while it
waits. A delivery is attempted under its row lock, so parallel senders never
post the same delivery at once.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import msgspec

from api.domains.events import webhooks_repository as repo
from api.domains.events.model import Event
from api.domains.events.schemas import Attempt, Delivery, Webhook, WebhookCreated, WebhookInput
from api.domains.events.signing import SIGNATURE_HEADER, sign, subscription_secret
from api.domains.merchants import service as merchants
from api.errors import InvalidInput, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id

MAX_ATTEMPTS = 8
"""Attempts before a delivery ends ``failed``: about 20 minutes of retries with the default backoff."""
BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 3600.0

Backoff = Callable[[int], float]
"""Seconds to wait after failed attempt number ``n`` before the next one."""


def exponential_backoff(attempt: int) -> float:
    """10 s doubling per attempt, capped at an hour, with equal jitter (half fixed, half random).

    The random half spreads the retries of many deliveries to an endpoint that
    comes back, so they do not all arrive at once.
    """
    step = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** (attempt - 1))
    return step / 2 + random.uniform(0, step / 2)


class DeliveryFailed(Exception):
    """A non-2xx answer or a transport error: the delivery is rescheduled, or ends failed."""


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
            next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
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
    backoff: Backoff = exponential_backoff,
) -> dict[str, int]:
    """Make one attempt at each delivery due now; returns how many ``succeeded``, ``failed`` for good,
    and were ``rescheduled`` for a later attempt."""
    due_by = utc_now()  # a delivery rescheduled during this call waits for a later one
    outcome = {"succeeded": 0, "failed": 0, "rescheduled": 0}
    for _ in range(limit):
        async with conn.transaction():
            claimed = await repo.claim_due(conn, due_by, 1)
            if not claimed:
                break
            delivery = claimed[0]
            attempt = delivery["attempts"] + 1
            secret = subscription_secret(pepper, delivery["subscription_id"])
            try:
                await _post(conn, client, delivery, msgspec.json.encode(delivery["body"]), secret, attempt)
            except DeliveryFailed:
                if attempt < max_attempts:
                    await repo.reschedule(conn, delivery["id"], timedelta(seconds=backoff(attempt)))
                    outcome["rescheduled"] += 1
                    continue
                status = "failed"
            else:
                status = "succeeded"
            await repo.finish(conn, delivery["id"], status)
            outcome[status] += 1
    return outcome
