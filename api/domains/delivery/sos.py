"""SOS: a courier (or a customer) in trouble; support sees it first and the deliveries freeze.

Frozen deliveries refuse every move, rerouting and the stall release until an
admin resolves the incident.
"""

from __future__ import annotations

import uuid

import msgspec

from api.domains.delivery import repository as repo
from api.domains.delivery import transitions
from api.domains.delivery.schemas import InsuranceClaim, SosIncident, SosInput
from api.errors import Conflict, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event


async def raise_sos(conn: Connection, principal: Principal, body: SosInput) -> SosIncident:
    """A courier's SOS: recorded with position, every delivery they hold frozen, support alerted first."""
    async with conn.transaction():
        courier = await transitions.courier_of(conn, principal)
        return await _raise(
            conn, principal, body, city_id=courier["city_id"], courier_id=courier["id"], delivery_id=None
        )


async def raise_customer_sos(
    conn: Connection, principal: Principal, delivery_id: uuid.UUID, body: SosInput
) -> SosIncident:
    """A customer's SOS about their delivery: that delivery freezes (if under way), support is alerted."""
    async with conn.transaction():
        delivery = await repo.delivery(conn, delivery_id, lock=True)
        if delivery is None or await repo.customer_of(conn, delivery_id) != principal.user_id:
            raise NotFound("no such delivery among your orders")
        return await _raise(
            conn,
            principal,
            body,
            city_id=delivery["city_id"],
            courier_id=delivery["courier_id"],
            delivery_id=delivery_id,
        )


async def _raise(
    conn: Connection,
    principal: Principal,
    body: SosInput,
    *,
    city_id: str,
    courier_id: uuid.UUID | None,
    delivery_id: uuid.UUID | None,
) -> SosIncident:
    """Record the incident, freeze, open a pending claim per covered delivery, emit ``sos.raised``."""
    now = utc_now()
    raised_as = "courier" if delivery_id is None else "customer"
    incident_id = new_id()
    await repo.insert_sos(
        conn,
        {
            "id": incident_id,
            "city_id": city_id,
            "raised_by": principal.user_id,
            "raised_as": raised_as,
            "courier_id": courier_id,
            "delivery_id": delivery_id,
            "lat": body.lat,
            "lng": body.lng,
            "note": body.note,
            "raised_at": now,
        },
    )
    if delivery_id is None:
        assert courier_id is not None
        frozen = await repo.freeze(conn, courier_id, incident_id)
    else:
        frozen = await repo.freeze_delivery(conn, delivery_id, incident_id)
    for covered in await repo.covered_frozen_by(conn, incident_id):
        await repo.insert_claim(
            conn,
            {
                "id": new_id(),
                "delivery_id": covered["id"],
                "city_id": covered["city_id"],
                "incident_id": incident_id,
                "policy_id": covered["coverage_policy_id"],
                "claimed_minor": covered["insured_value_minor"],
                "currency": covered["insured_currency"],
                "reason": f"SOS raised by the {raised_as}",
                "created_at": now,
            },
        )
    await append_event(
        conn,
        event_type="sos.raised",
        aggregate_type="sos",
        aggregate_id=incident_id,
        payload={
            "priority": "critical",
            "raised_as": raised_as,
            "courier_id": str(courier_id) if courier_id else None,
            "lat": body.lat,
            "lng": body.lng,
            "note": body.note,
            "deliveries": [str(frozen_id) for frozen_id in frozen],
        },
        city_id=city_id,
    )
    incident = await repo.sos(conn, incident_id)
    return msgspec.convert(incident, SosIncident)


async def open_incidents(conn: Connection) -> list[SosIncident]:
    return [msgspec.convert(row, SosIncident) for row in await repo.open_sos(conn)]


async def resolve_sos(
    conn: Connection, admin: Principal, incident_id: uuid.UUID, resolution: str
) -> SosIncident:
    async with conn.transaction():
        incident = await repo.sos(conn, incident_id, lock=True)
        if incident is None:
            raise NotFound("no such SOS incident")
        if incident["status"] != "open":
            raise Conflict("this SOS is already resolved")
        resolved = await repo.resolve_sos(conn, incident_id, admin.user_id, resolution, utc_now())
        await append_event(
            conn,
            event_type="sos.resolved",
            aggregate_type="sos",
            aggregate_id=incident_id,
            payload={"resolution": resolution, "by": str(admin.user_id)},
            city_id=incident["city_id"],
        )
    return msgspec.convert(resolved, SosIncident)


async def claims(conn: Connection, status: str | None) -> list[InsuranceClaim]:
    return [msgspec.convert(row, InsuranceClaim) for row in await repo.claims(conn, status)]
