"""Safety and insurance: cover on every delivery, customer SOS, support alerts, claims filed."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row

from api.app import create_app
from api.domains.delivery.insurance import SandboxInsurer
from api.domains.delivery.safety import CONSUMER, SafetyFollowUp, follow_up_pass
from api.domains.events.buses import RabbitMQBus, unrouted_queue
from api.domains.events.consumers import PostgresStreamConsumer, RabbitMQConsumer, consumer_for
from api.domains.events.jobs import relay_once
from api.domains.events.model import Event
from api.domains.notifications.sandbox import SandboxSender, read_messages
from api.security.principal import Role
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings, load_settings
from tests.api.delivery.conftest import Actor, MakeCourier, MakeUser
from tests.api.delivery.scenario import Client, at_position, merchant_order, offers, round_now

WAIT_S = 15.0
"""Upper bound for the background jobs to show their effect (a bound on a hang, not a speed check)."""
HERE = {"lat": 27.7050, "lng": 85.3250}


async def _eventually(check: Callable[[], Awaitable[Any]]) -> Any:
    async def poll() -> Any:
        while not (found := await check()):  # noqa: ASYNC110 (polls the database: no event to await)
            await asyncio.sleep(0.05)
        return found

    return await asyncio.wait_for(poll(), timeout=WAIT_S)


async def _assigned_to(client: Client, admin: Actor, courier: Actor) -> str:
    await round_now(client, admin)
    offer = (await offers(client, courier))["pending"][0]
    accepted = await client.post(f"/v1/couriers/me/offers/{offer['id']}/accept", headers=courier.headers)
    assert accepted.status_code == 200, accepted.text
    return str(accepted.json()["id"])


async def _claims(client: Client, admin: Actor, status: str | None = None) -> list[dict[str, Any]]:
    listed = await client.get(
        "/v1/admin/insurance-claims", params={"status": status} if status else {}, headers=admin.headers
    )
    assert listed.status_code == 200, listed.text
    return list(listed.json())


POSTGRES_GROUP = PostgresStreamConsumer(CONSUMER)


def _follow_up(settings: Settings) -> SafetyFollowUp:
    return SafetyFollowUp(SandboxSender(settings), SandboxInsurer(settings), settings.support_email)


async def test_every_delivery_records_its_cover(
    client: Client, make_courier: MakeCourier, make_user: MakeUser, admin: Actor, conn: Any
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned_to(client, admin, courier)
    seen = await client.get(f"/v1/couriers/me/deliveries/{delivery_id}", headers=courier.headers)
    body = seen.json()
    # the order's goods (1000 minor units of NPR) travel under the city's sandbox transit policy
    assert (body["coverage_policy_id"], body["insured_value_minor"], body["insured_currency"]) == (
        "sandbox-transit-kathmandu",
        1000,
        "NPR",
    )


async def test_a_customer_sos_freezes_their_delivery_alerts_support_and_files_a_claim(
    client: Client,
    make_courier: MakeCourier,
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
    settings: Settings,
    db_url: str,
) -> None:
    courier, _ = await make_courier()
    customer = await make_user(Role.CUSTOMER)
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user, customer=customer)
    delivery_id = await _assigned_to(client, admin, courier)

    stranger = await make_user(Role.CUSTOMER)
    path = f"/v1/deliveries/{delivery_id}/sos"
    assert (await client.post(path, json=HERE, headers=stranger.headers)).status_code == 404
    raised = await client.post(
        path, json={**HERE, "note": "the courier is threatening me"}, headers=customer.headers
    )
    assert raised.status_code == 201, raised.text
    incident = raised.json()
    assert (incident["raised_as"], incident["delivery_id"]) == ("customer", delivery_id)
    moved = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/status", json={"to": "at_pickup"}, headers=courier.headers
    )
    assert moved.status_code == 409  # frozen
    [pending] = await _claims(client, admin, "pending")
    assert (pending["delivery_id"], pending["claimed_minor"], pending["currency"]) == (
        delivery_id,
        1000,
        "NPR",
    )

    await relay_once(db_url, settings)
    async with await _connect(db_url) as worker:
        assert await follow_up_pass(worker, _follow_up(settings), POSTGRES_GROUP) >= 1
        assert await follow_up_pass(worker, _follow_up(settings), POSTGRES_GROUP) == 0  # once per event
    [alert] = [m for m in read_messages(settings.sandbox_outbox_path) if m.template == "support_alert"]
    assert alert.destination == settings.support_email
    assert "SOS (critical) raised by a customer" in alert.body
    assert "the courier is threatening me" in alert.body
    [filed] = await _claims(client, admin, "filed")
    assert filed["id"] == pending["id"]
    assert filed["insurer_reference"].startswith("SBX-")
    recorded = [json.loads(line) for line in _claims_file(settings).read_text().splitlines()]
    assert [(c["claim_id"], c["reference"]) for c in recorded] == [(filed["id"], filed["insurer_reference"])]


async def test_serve_jobs_alert_support_and_file_the_claims_of_a_courier_sos(
    settings: Settings,
    db_url: str,
    client: Client,
    make_courier: MakeCourier,
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    first = await _assigned_to(client, admin, courier)
    # same home as the tokens' issuer (the sandbox signing key lives there); rounds off, follow-up on
    settings = load_settings({"NEARX_HOME": str(settings.home), "NEARX_DISPATCH_INTERVAL_S": "0"})

    async with AsyncTestClient(
        app=create_app(settings, db_url=db_url, run_relay=True, run_dispatch=True)
    ) as served:
        raised = await served.post("/v1/couriers/me/sos", json=HERE, headers=courier.headers)
        assert raised.status_code == 201, raised.text

        async def filed() -> Any:
            return [
                c for c in await _claims(client, admin, "filed") if c["incident_id"] == raised.json()["id"]
            ]

        [claim] = await _eventually(filed)
        assert claim["delivery_id"] == first

        async def alerted() -> list[Any]:
            return [m for m in read_messages(settings.sandbox_outbox_path) if m.template == "support_alert"]

        [alert] = await _eventually(alerted)
    assert "SOS (critical) raised by a courier" in alert.body


async def test_a_reported_problem_alerts_support(
    client: Client,
    make_courier: MakeCourier,
    make_user: MakeUser,
    admin: Actor,
    conn: Any,
    settings: Settings,
    db_url: str,
) -> None:
    courier, _ = await make_courier()
    await at_position(client, courier, 27.7101, 85.3201)
    await merchant_order(conn, make_user)
    delivery_id = await _assigned_to(client, admin, courier)
    reported = await client.post(
        f"/v1/couriers/me/deliveries/{delivery_id}/problem",
        json={"kind": "merchant_closed", "note": "shutters down"},
        headers=courier.headers,
    )
    assert reported.status_code == 201, reported.text
    await relay_once(db_url, settings)
    async with await _connect(db_url) as worker:
        await follow_up_pass(worker, _follow_up(settings), POSTGRES_GROUP)
    [alert] = [m for m in read_messages(settings.sandbox_outbox_path) if m.template == "support_alert"]
    assert "delivery problem: merchant_closed" in alert.body
    assert "shutters down" in alert.body
    assert await _claims(client, admin) == []  # a problem is not an incident: nothing to claim


def _claims_file(settings: Settings) -> Path:
    return settings.home / "sandbox" / "insurance_claims.jsonl"


async def _connect(url: str) -> Any:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


@pytest.mark.rabbitmq
async def test_on_rabbitmq_the_follow_up_gets_its_events_from_its_own_queue(
    db_url: str, tmp_path: Path
) -> None:
    url = os.environ.get("NEARX_TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("NEARX_TEST_RABBITMQ_URL is not set")
    exchange = f"nearx.test.safety.{uuid.uuid4().hex}"
    settings = load_settings(
        {
            "NEARX_HOME": str(tmp_path / "nearx"),
            "NEARX_RABBITMQ_URL": url,
            "NEARX_RABBITMQ_EXCHANGE": exchange,
        }
    )
    consumer = await consumer_for(
        settings, CONSUMER
    )  # declares the group's queue before anything is published
    assert isinstance(consumer, RabbitMQConsumer)
    bus = RabbitMQBus(url, exchange=exchange)
    problem = Event(
        event_id=new_id(),
        event_type="delivery.problem_reported",
        schema_version=1,
        aggregate_type="delivery",
        aggregate_id=new_id(),
        city_id="kathmandu",
        payload={"kind": "road_closed", "lat": HERE["lat"], "lng": HERE["lng"], "note": "bridge shut"},
        occurred_at=utc_now(),
    )
    try:
        await bus.publish([problem])
        async with await _connect(db_url) as worker:

            async def handled() -> int:
                return await follow_up_pass(worker, _follow_up(settings), consumer)

            assert await _eventually(handled) == 1
            await bus.publish([problem])  # redelivered: the processed-id record makes it a no-op
            assert await follow_up_pass(worker, _follow_up(settings), consumer) == 0
        [alert] = [m for m in read_messages(settings.sandbox_outbox_path) if m.template == "support_alert"]
        assert "delivery problem: road_closed" in alert.body
        assert "bridge shut" in alert.body
    finally:
        await consumer.close()
        await bus.close()
        async with await aio_pika.connect(url) as connection:  # the throwaway queues and exchanges
            channel = await connection.channel()
            for queue in (f"{exchange}.{CONSUMER}", unrouted_queue(exchange)):
                await channel.queue_delete(queue)
            for name in (exchange, unrouted_queue(exchange)):
                await channel.exchange_delete(name)
