"""Merchant webhooks: subscriptions, fan-out from the stream, signed deliveries, retries, attempts."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.events.buses import PostgresBus
from api.domains.events.consumers import poll_postgres
from api.domains.events.jobs import background_webhooks, webhooks_once
from api.domains.events.relay import Relay
from api.domains.events.signing import SIGNATURE_HEADER, sign, verify
from api.domains.events.webhooks import BACKOFF_MAX_S, deliver_pending, exponential_backoff, fan_out
from nearx.db import create_pool
from nearx.settings import Settings
from tests.api.marketplace.conftest import Actor, MakeMerchant, MakeProduct, MakeUser

HOME = {"lat": 27.701, "lng": 85.321}


def no_wait(attempt: int) -> float:
    """A backoff of zero: the retry is due at once (at the next call, never within the same one)."""
    return 0.0


class Receiver:
    """The merchant's HTTPS endpoint, as an httpx transport: answers from a script, keeps requests."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.codes.pop(0) if self.codes else 200)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


async def _subscribe(
    client: AsyncTestClient[Litestar], owner: Actor, merchant: dict[str, Any], *types: str
) -> Any:
    response = await client.post(
        f"/v1/merchants/{merchant['id']}/webhooks",
        json={"url": "https://merchant.example/hooks", "event_types": list(types)},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _order(client: AsyncTestClient[Litestar], customer: Actor, variant_id: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/orders",
        json={"items": [{"variant_id": variant_id, "quantity": 1}], "delivery": HOME},
        headers={**customer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    child: dict[str, Any] = response.json()["merchant_orders"][0]
    return child


async def test_subscriptions_need_a_manager_and_https(
    client: AsyncTestClient[Litestar], make_merchant: MakeMerchant, make_user: MakeUser
) -> None:
    owner, merchant = await make_merchant()
    clerk = await make_user()
    await client.post(
        f"/v1/merchants/{merchant['id']}/staff",
        json={"user_id": str(clerk.user_id), "role": "staff"},
        headers=owner.headers,
    )
    url = f"/v1/merchants/{merchant['id']}/webhooks"
    body = {"url": "https://merchant.example/hooks", "event_types": ["order.created"]}
    assert (await client.post(url, json=body, headers=clerk.headers)).status_code == 403
    assert (
        await client.post(url, json={**body, "url": "http://merchant.example"}, headers=owner.headers)
    ).status_code == 400
    assert (
        await client.post(url, json={**body, "event_types": ["Order Created"]}, headers=owner.headers)
    ).status_code == 400
    created = (await client.post(url, json=body, headers=owner.headers)).json()
    assert len(created["secret"]) == 64
    listed = (await client.get(url, headers=owner.headers)).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]


async def test_events_reach_the_merchant_signed_once(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
    db_url: str,
    settings: Settings,
) -> None:
    owner, merchant = await make_merchant()
    product = await make_product(owner, merchant)
    hook = await _subscribe(client, owner, merchant, "order.created", "order.accepted")
    customer = await make_user()
    order = await _order(client, customer, product["variants"][0]["id"])
    await client.post(
        f"/v1/merchant-orders/{order['id']}/transitions", json={"to": "accepted"}, headers=owner.headers
    )
    await Relay(conn, PostgresBus(conn)).drain()

    receiver = Receiver()
    async with receiver.client() as http:
        assert await webhooks_once(db_url, settings, client=http) == {
            "succeeded": 2,
            "failed": 0,
            "rescheduled": 0,
        }
        assert await webhooks_once(db_url, settings, client=http) == {
            "succeeded": 0,
            "failed": 0,
            "rescheduled": 0,
        }
    assert [r.headers["X-Nearx-Event"] for r in receiver.requests] == ["order.created", "order.accepted"]
    now = int(time.time())
    for request in receiver.requests:
        assert verify(hook["secret"], request.headers[SIGNATURE_HEADER], request.content, now=now)
        assert msgspec.json.decode(request.content)["data"]["order_id"] == order["id"]
    deliveries = (
        await client.get(
            f"/v1/merchants/{merchant['id']}/webhooks/{hook['id']}/deliveries", headers=owner.headers
        )
    ).json()
    assert sorted(d["status"] for d in deliveries) == ["succeeded", "succeeded"]
    assert all(len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 200 for d in deliveries)


async def _pending_delivery(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
) -> tuple[Actor, dict[str, Any], dict[str, Any]]:
    owner, merchant = await make_merchant()
    product = await make_product(owner, merchant)
    hook = await _subscribe(client, owner, merchant, "order.created")
    await _order(client, await make_user(), product["variants"][0]["id"])
    await Relay(conn, PostgresBus(conn)).drain()
    while await poll_postgres(conn, "webhooks", fan_out):
        pass
    return owner, merchant, hook


async def test_failures_are_retried_with_every_attempt_visible(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
    settings: Settings,
) -> None:
    owner, merchant, hook = await _pending_delivery(client, make_merchant, make_product, make_user, conn)
    receiver = Receiver(500, 503, 200)
    url = f"/v1/merchants/{merchant['id']}/webhooks/{hook['id']}/deliveries"
    async with receiver.client() as http:
        first = await deliver_pending(conn, http, pepper=settings.pepper, backoff=lambda _: 3600.0)
        assert first == {"succeeded": 0, "failed": 0, "rescheduled": 1}
        waiting = (await client.get(url, headers=owner.headers)).json()[0]
        assert waiting["status"] == "pending"
        assert datetime.fromisoformat(waiting["next_attempt_at"]) > datetime.now(UTC)
        # not due yet: the next call leaves it alone instead of sleeping on it
        assert await deliver_pending(conn, http, pepper=settings.pepper) == {
            "succeeded": 0,
            "failed": 0,
            "rescheduled": 0,
        }
        await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        results = [
            await deliver_pending(conn, http, pepper=settings.pepper, backoff=no_wait) for _ in range(2)
        ]
    assert results == [
        {"succeeded": 0, "failed": 0, "rescheduled": 1},
        {"succeeded": 1, "failed": 0, "rescheduled": 0},
    ]
    deliveries = (await client.get(url, headers=owner.headers)).json()
    assert [(a["attempt"], a["status_code"]) for a in deliveries[0]["attempts"]] == [
        (1, 500),
        (2, 503),
        (3, 200),
    ]
    assert deliveries[0]["status"] == "succeeded"
    assert deliveries[0]["next_attempt_at"] is None


async def test_a_dead_endpoint_ends_failed_after_the_last_attempt(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
    settings: Settings,
) -> None:
    owner, merchant, hook = await _pending_delivery(client, make_merchant, make_product, make_user, conn)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        results = [
            await deliver_pending(conn, http, pepper=settings.pepper, backoff=no_wait, max_attempts=3)
            for _ in range(4)
        ]
    assert [r["rescheduled"] for r in results] == [1, 1, 0, 0]
    assert [r["failed"] for r in results] == [0, 0, 1, 0]  # the third attempt was the last
    deliveries = (
        await client.get(
            f"/v1/merchants/{merchant['id']}/webhooks/{hook['id']}/deliveries", headers=owner.headers
        )
    ).json()
    assert deliveries[0]["status"] == "failed"
    assert [a["error"].split(":")[0] for a in deliveries[0]["attempts"]] == ["ConnectError"] * 3


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, step in ((1, 10.0), (2, 20.0), (3, 40.0), (12, BACKOFF_MAX_S)):
        waits = [exponential_backoff(attempt) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits)
        assert len(set(waits)) > 1  # jittered, so retries of many deliveries spread out


def test_signatures_refuse_tampering_and_replays() -> None:
    body, secret, now = b'{"a":1}', "s" * 64, 1_700_000_000
    header = sign(secret, body, now)
    assert verify(secret, header, body, now=now + 10)
    assert not verify(secret, header, b'{"a":2}', now=now)
    assert not verify("x" * 64, header, body, now=now)
    assert not verify(secret, header, body, now=now + 3_600)
    assert not verify(secret, "garbage", body, now=now)


async def test_the_serve_loop_fans_out_and_sends(
    client: AsyncTestClient[Litestar],
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    make_user: MakeUser,
    conn: Any,
    db_url: str,
    settings: Settings,
) -> None:
    owner, merchant = await make_merchant()
    product = await make_product(owner, merchant)
    await _subscribe(client, owner, merchant, "order.created")
    order = await _order(client, await make_user(), product["variants"][0]["id"])
    await Relay(conn, PostgresBus(conn)).drain()

    receiver = Receiver()
    pool = create_pool(db_url, min_size=1, max_size=2, timeout_s=10.0)
    await pool.open(wait=True)
    try:
        async with (
            receiver.client() as http,
            background_webhooks(pool, dataclasses.replace(settings, webhooks_interval_s=0.05), client=http),
        ):
            for _ in range(600):  # bounded wait for the background round
                if receiver.requests:
                    break
                await asyncio.sleep(0.05)
    finally:
        await pool.close()
    assert [r.headers["X-Nearx-Event"] for r in receiver.requests] == ["order.created"]
    assert msgspec.json.decode(receiver.requests[0].content)["data"]["order_id"] == order["id"]
