"""SOS: a courier (or a customer) in trouble; support sees it first and the deliveries freeze.

Frozen deliveries refuse every move, rerouting and the stall release until an
admin resolves the incident.
"""

from __future__ import annotations

import uuid

import msgspec

from api.domains.delivery import repository as repo
from api.domains.delivery import transitions
from api.domains.delivery.schemas import SosIncident, SosInput
from api.errors import Conflict, NotFound
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event


async def raise_sos(conn: Connection, principal: Principal, body: SosInput) -> SosIncident:
    """A courier's SOS: recorded with position, the courier's deliveries frozen, support alerted first."""
    now = utc_now()
    async with conn.transaction():
        courier = await transitions.courier_of(conn, principal)
        incident_id = new_id()
        await repo.insert_sos(
            conn,
            {
                "id": incident_id,
                "city_id": courier["city_id"],
                "raised_by": principal.user_id,
                "courier_id": courier["id"],
                "lat": body.lat,
                "lng": body.lng,
                "note": body.note,
                "raised_at": now,
            },
        )
        frozen = await repo.freeze(conn, courier["id"], incident_id)
        await append_event(
            conn,
            event_type="sos.raised",
            aggregate_type="sos",
            aggregate_id=incident_id,
            payload={
                "priority": "critical",
                "courier_id": str(courier["id"]),
                "lat": body.lat,
                "lng": body.lng,
                "deliveries": [str(delivery_id) for delivery_id in frozen],
            },
            city_id=courier["city_id"],
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
