"""HTTP surface of deliveries: couriers see and answer offers and report progress; ops run rounds."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.domains.delivery import rerouting, service, sos
from api.domains.delivery.live import LiveHub, closing_on_refusal, courier_topic, delivery_topic, stream_to
from api.domains.delivery.schemas import (
    Advance,
    CustomerDelivery,
    Delivery,
    HandoverCode,
    HistoryEntry,
    InsuranceClaim,
    LiveOffers,
    MyOffers,
    OfferResponse,
    Problem,
    ProblemReport,
    RoundReport,
    RoundRequest,
    SosIncident,
    SosInput,
    SosResolution,
)
from api.security.guards import principal_of, requires_role
from api.security.principal import Principal, Role
from nearx.db import Connection, Pool
from nearx.settings import Settings


class CourierDeliveryController(Controller):
    path = "/v1/couriers/me"
    tags = ["delivery"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    guards = [requires_role(Role.COURIER)]  # noqa: RUF012

    @get("/offers", operation_id="couriers_offers", summary="Offers waiting for your answer")
    async def offers(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]
    ) -> MyOffers:
        return await service.my_offers(conn, principal)

    @post(
        "/offers/{offer_id:uuid}/accept",
        operation_id="couriers_accept_offer",
        summary="Take it",
        status_code=200,
    )
    async def accept(
        self,
        offer_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Delivery:
        return await service.respond(conn, principal, offer_id, accept=True, reason=None)

    @post(
        "/offers/{offer_id:uuid}/decline",
        operation_id="couriers_decline_offer",
        summary="Pass",
        status_code=200,
    )
    async def decline(
        self,
        offer_id: FromPath[uuid.UUID],
        data: JSONBody[OfferResponse],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Delivery:
        return await service.respond(conn, principal, offer_id, accept=False, reason=data.reason)

    @websocket("/live")
    async def live(self, socket: WebSocket[Any, Any, Any]) -> None:
        """Your offers as they are made and closed; the first message lists those waiting now."""
        principal = principal_of(socket)
        pool: Pool = socket.app.state.pool
        hub: LiveHub = socket.app.state.live
        with closing_on_refusal():
            async with pool.connection() as conn:
                courier_id = await service.courier_id_of(conn, principal)
            with hub.subscribe(courier_topic(courier_id)) as queue:
                async with pool.connection() as conn:
                    offers = await service.my_offers(conn, principal)
                await stream_to(socket, LiveOffers(pending=offers.pending), queue)

    @get("/deliveries/{delivery_id:uuid}", operation_id="couriers_delivery", summary="One of your deliveries")
    async def get_delivery(
        self,
        delivery_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Delivery:
        return await service.get_for_courier(conn, principal, delivery_id)

    @post(
        "/deliveries/{delivery_id:uuid}/status",
        operation_id="couriers_advance_delivery",
        summary="At pickup, picked up, delivered",
        status_code=200,
    )
    async def advance(
        self,
        delivery_id: FromPath[uuid.UUID],
        data: JSONBody[Advance],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> Delivery:
        return await service.advance(conn, principal, delivery_id, data, settings)

    @post(
        "/deliveries/{delivery_id:uuid}/problem",
        operation_id="couriers_report_problem",
        summary="Cannot go on: back to dispatch (before pickup) or to support (after)",
    )
    async def report_problem(
        self,
        delivery_id: FromPath[uuid.UUID],
        data: JSONBody[ProblemReport],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Problem:
        return await rerouting.report_problem(conn, principal, delivery_id, data)

    @post("/sos", operation_id="couriers_sos", summary="Raise SOS with your position")
    async def raise_sos(
        self,
        data: JSONBody[SosInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> SosIncident:
        return await sos.raise_sos(conn, principal, data)


class CustomerDeliveryController(Controller):
    path = "/v1/deliveries"
    tags = ["delivery"]  # noqa: RUF012

    @post("/{delivery_id:uuid}/sos", operation_id="deliveries_sos", summary="Raise SOS about your delivery")
    async def raise_sos(
        self,
        delivery_id: FromPath[uuid.UUID],
        data: JSONBody[SosInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> SosIncident:
        return await sos.raise_customer_sos(conn, principal, delivery_id, data)

    @get("/{delivery_id:uuid}", operation_id="deliveries_get", summary="Your delivery: status, ETA, courier")
    async def get_delivery(
        self,
        delivery_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> CustomerDelivery:
        return await service.customer_view(conn, principal, delivery_id)

    @websocket("/{delivery_id:uuid}/live")
    async def live(self, socket: WebSocket[Any, Any, Any], delivery_id: FromPath[uuid.UUID]) -> None:
        """Status, ETA and courier position as they change; the first message is the GET body."""
        principal = principal_of(socket)
        pool: Pool = socket.app.state.pool
        hub: LiveHub = socket.app.state.live
        with closing_on_refusal(), hub.subscribe(delivery_topic(delivery_id)) as queue:
            async with pool.connection() as conn:
                snapshot = await service.customer_view(conn, principal, delivery_id)
            await stream_to(socket, snapshot, queue)

    @get(
        "/{delivery_id:uuid}/handover-code",
        operation_id="deliveries_handover_code",
        summary="Code for the door",
    )
    async def handover_code(
        self,
        delivery_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> HandoverCode:
        return await service.handover_code(conn, principal, delivery_id, settings)


class DispatchAdminController(Controller):
    path = "/v1/admin"
    tags = ["delivery", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN)]  # noqa: RUF012

    @post(
        "/dispatch/rounds",
        operation_id="admin_dispatch_round",
        summary="Run a dispatch round now",
        status_code=200,
    )
    async def run_round(self, data: JSONBody[RoundRequest], conn: NamedDependency[Connection]) -> RoundReport:
        return await service.run_round(conn, data.city_id)

    @get(
        "/delivery-problems",
        operation_id="admin_delivery_problems_open",
        summary="Open delivery problems (reported, deviations, silent couriers), oldest first",
    )
    async def open_problems(self, conn: NamedDependency[Connection]) -> list[Problem]:
        return await rerouting.open_problems(conn)

    @post(
        "/delivery-problems/{problem_id:uuid}/resolve",
        operation_id="admin_delivery_problem_resolve",
        summary="Resolve",
        status_code=200,
    )
    async def resolve_problem(
        self,
        problem_id: FromPath[uuid.UUID],
        data: JSONBody[SosResolution],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Problem:
        return await rerouting.resolve_problem(conn, principal, problem_id, data.resolution)

    @get("/insurance-claims", operation_id="admin_insurance_claims", summary="Claims, oldest first")
    async def claims(
        self,
        conn: NamedDependency[Connection],
        status: FromQuery[Literal["pending", "filed"] | None] = None,
    ) -> list[InsuranceClaim]:
        return await sos.claims(conn, status)

    @get("/sos", operation_id="admin_sos_open", summary="Open SOS incidents, oldest first")
    async def open_sos(self, conn: NamedDependency[Connection]) -> list[SosIncident]:
        return await sos.open_incidents(conn)

    @post(
        "/sos/{incident_id:uuid}/resolve",
        operation_id="admin_sos_resolve",
        summary="Resolve",
        status_code=200,
    )
    async def resolve_sos(
        self,
        incident_id: FromPath[uuid.UUID],
        data: JSONBody[SosResolution],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> SosIncident:
        return await sos.resolve_sos(conn, principal, incident_id, data.resolution)

    @get(
        "/deliveries/{delivery_id:uuid}/history", operation_id="admin_delivery_history", summary="Transitions"
    )
    async def history(
        self, delivery_id: FromPath[uuid.UUID], conn: NamedDependency[Connection]
    ) -> list[HistoryEntry]:
        return await service.history_for_admin(conn, delivery_id)
