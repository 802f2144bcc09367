"""Safety follow-up after commit: support is alerted, incident claims go to the insurer.

A consumer of the event bus (idempotent per event id, like every consumer):
``sos.raised`` and ``delivery.problem_reported`` send a support alert through the
notifications sender; ``sos.raised`` also files the incident's pending claims
with the insurer. A failure rolls the event's work back and it comes again on
the next pass; the insurer returns the same reference for a claim filed twice.
"""

from __future__ import annotations

from api.domains.delivery import repository as repo
from api.domains.delivery.insurance import ClaimToFile, Insurer
from api.domains.events.consumers import EventConsumer
from api.domains.events.model import Event
from api.domains.notifications.sender import MessageSender
from nearx.clock import utc_now
from nearx.db import Connection

CONSUMER = "delivery-safety"
"""The consumer group (``consumer_for``) that follows up on safety events."""


class SafetyFollowUp:
    """The event handler: alerts support, files claims."""

    def __init__(self, sender: MessageSender, insurer: Insurer, support_email: str) -> None:
        self._sender = sender
        self._insurer = insurer
        self._support_email = support_email

    async def __call__(self, conn: Connection, event: Event) -> None:
        if event.event_type == "sos.raised":
            await self._alert(
                event, f"SOS ({event.payload['priority']}) raised by a {event.payload['raised_as']}"
            )
            await self._file_claims(conn, event)
        elif event.event_type == "delivery.problem_reported":
            await self._alert(event, f"delivery problem: {event.payload['kind']}")

    async def _alert(self, event: Event, title: str) -> None:
        payload = event.payload
        where = f"{payload['lat']:.5f},{payload['lng']:.5f}" if "lat" in payload else "unknown"
        await self._sender.send(
            channel="email",
            destination=self._support_email,
            template="support_alert",
            params={
                "title": title,
                "city": event.city_id or "unknown",
                "reference": str(event.aggregate_id),
                "where": where,
                "note": str(payload.get("note") or ""),
            },
        )

    async def _file_claims(self, conn: Connection, event: Event) -> None:
        for claim in await repo.pending_claims(conn, event.aggregate_id):
            reference = await self._insurer.file_claim(
                ClaimToFile(
                    claim_id=claim["id"],
                    policy_id=claim["policy_id"],
                    delivery_id=claim["delivery_id"],
                    incident_id=claim["incident_id"],
                    claimed_minor=claim["claimed_minor"],
                    currency=claim["currency"],
                    reason=claim["reason"],
                    occurred_at=event.occurred_at,
                )
            )
            await repo.mark_claim_filed(conn, claim["id"], reference, utc_now())


async def follow_up_pass(conn: Connection, handler: SafetyFollowUp, consumer: EventConsumer) -> int:
    """Handle every event waiting for the consumer group (on whichever bus the relay publishes to)."""
    handled = 0
    while batch := await consumer.poll(conn, handler):
        handled += batch
    return handled
