"""HTTP surface of scheduling: provider calendars, open slots, and the booking lifecycle."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromHeader, FromPath, FromQuery, JSONBody, Parameter

from api.domains.bookings import service
from api.domains.bookings.ports import DepositGateway, RecordingDepositGateway
from api.domains.bookings.schemas import (
    Booking,
    BookingInput,
    BookingStatus,
    Calendar,
    CalendarInput,
    CancelInput,
    CompleteInput,
    RescheduleInput,
    SlotOut,
)
from api.domains.orders.ports import RecordingRefundGateway, RefundGateway
from api.idempotency import IDEMPOTENCY_HEADER, require_key
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.security.principal import Principal
from nearx.db import Connection
from nearx.settings import Settings

IdempotencyKey = Annotated[str | None, Parameter(header=IDEMPOTENCY_HEADER, required=False)]


def _deposit_gateway(state: State) -> DepositGateway:
    """Payments plugs its implementation into ``app.state.deposit_gateway``; else the recording default."""
    gateway: DepositGateway = state.get("deposit_gateway") or RecordingDepositGateway()
    return gateway


class BookingController(Controller):
    path = "/v1"
    tags = ["bookings"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @put(
        "/providers/{provider_id:uuid}/calendar",
        operation_id="providers_set_calendar",
        summary="Set the calendar",
    )
    async def set_calendar(
        self,
        provider_id: FromPath[uuid.UUID],
        data: JSONBody[CalendarInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Calendar:
        return await service.set_calendar(conn, principal, provider_id, data)

    @get(
        "/providers/{provider_id:uuid}/slots", operation_id="providers_slots", summary="Open slots on a date"
    )
    async def slots(
        self,
        provider_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        day: Annotated[date, Parameter(query="date")],
        service_id: FromQuery[uuid.UUID],
    ) -> list[SlotOut]:
        return await service.slots(conn, principal, provider_id, day, service_id)

    @get(
        "/providers/{provider_id:uuid}/bookings",
        operation_id="providers_bookings_queue",
        summary="The provider's queue (emergencies first)",
    )
    async def queue(
        self,
        provider_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        status: FromQuery[list[BookingStatus] | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> list[Booking]:
        statuses: list[str] = list(status) if status else ["held", "confirmed"]
        return await service.provider_bookings(conn, principal, provider_id, statuses, limit)

    @post("/bookings", operation_id="bookings_hold", summary="Hold a slot", response_model=Booking)
    async def hold(
        self,
        data: JSONBody[BookingInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        idempotency_key: FromHeader[IdempotencyKey] = None,
    ) -> Response[Any]:
        status, body = await service.hold(
            conn, principal, data, key=require_key(idempotency_key), settings=settings
        )
        return Response(body, status_code=status)

    @get("/bookings/{booking_id:uuid}", operation_id="bookings_get", summary="One booking")
    async def get_booking(
        self,
        booking_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Booking:
        return await service.get(conn, principal, booking_id)

    @post(
        "/bookings/{booking_id:uuid}/confirm",
        operation_id="bookings_confirm",
        summary="Confirm with the deposit",
        status_code=200,
    )
    async def confirm(
        self,
        booking_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Booking:
        return await service.confirm(conn, principal, booking_id, _deposit_gateway(state))

    @post(
        "/bookings/{booking_id:uuid}/release",
        operation_id="bookings_release",
        summary="Let the hold go",
        status_code=200,
    )
    async def release(
        self,
        booking_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Booking:
        return await service.release(conn, principal, booking_id)

    @post(
        "/bookings/{booking_id:uuid}/cancel",
        operation_id="bookings_cancel",
        summary="Cancel",
        status_code=200,
    )
    async def cancel(
        self,
        booking_id: FromPath[uuid.UUID],
        data: JSONBody[CancelInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Booking:
        return await service.cancel(conn, principal, booking_id, data.reason)

    @post(
        "/bookings/{booking_id:uuid}/reschedule",
        operation_id="bookings_reschedule",
        summary="Move",
        status_code=200,
    )
    async def reschedule(
        self,
        booking_id: FromPath[uuid.UUID],
        data: JSONBody[RescheduleInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Booking:
        return await service.reschedule(conn, principal, booking_id, data.starts_at)

    @post(
        "/bookings/{booking_id:uuid}/complete",
        operation_id="bookings_complete",
        summary="Mark done",
        status_code=200,
    )
    async def complete(
        self,
        booking_id: FromPath[uuid.UUID],
        data: JSONBody[CompleteInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Booking:
        refunds: RefundGateway = state.get("refund_gateway") or RecordingRefundGateway()
        return await service.complete(conn, principal, booking_id, data, refunds)
