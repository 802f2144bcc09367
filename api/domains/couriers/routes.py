"""HTTP surface of couriers: apply, see yourself, go on and off shift, share GPS; admins decide."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromHeader, FromPath, FromQuery, JSONBody, Parameter

from api.domains.couriers import service
from api.domains.couriers.schemas import (
    Courier,
    CourierApplication,
    Decision,
    HistoryEntry,
    LocationBatch,
    LocationReceipt,
    ShiftChange,
)
from api.domains.identity.routes import request_context
from api.idempotency import IDEMPOTENCY_HEADER, require_key
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from nearx.db import Connection

IdempotencyKey = Annotated[str | None, Parameter(header=IDEMPOTENCY_HEADER, required=False)]


class CourierController(Controller):
    path = "/v1/couriers"
    tags = ["couriers"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post("/", operation_id="couriers_apply", summary="Apply to deliver", response_model=Courier)
    async def apply(
        self,
        data: JSONBody[CourierApplication],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        idempotency_key: FromHeader[IdempotencyKey] = None,
    ) -> Response[Any]:
        status, body = await service.apply(conn, principal, data, key=require_key(idempotency_key))
        return Response(body, status_code=status)

    @get("/me", operation_id="couriers_me", summary="Your courier profile")
    async def me(self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]) -> Courier:
        return await service.me(conn, principal)

    @get("/me/history", operation_id="couriers_history", summary="Approval and shift history")
    async def history(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]
    ) -> list[HistoryEntry]:
        return await service.my_history(conn, principal)

    @post(
        "/me/shift",
        operation_id="couriers_shift",
        summary="Go online, offline or on a break",
        guards=[requires_role(Role.COURIER)],
        status_code=200,
    )
    async def shift(
        self,
        data: JSONBody[ShiftChange],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Courier:
        return await service.change_shift(conn, principal, data)

    @post(
        "/me/locations",
        operation_id="couriers_locations",
        summary="A batch of GPS fixes",
        guards=[requires_role(Role.COURIER)],
        status_code=200,
    )
    async def locations(
        self,
        data: JSONBody[LocationBatch],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> LocationReceipt:
        return await service.ingest_locations(conn, principal, data)


class CourierAdminController(Controller):
    path = "/v1/admin/couriers"
    tags = ["couriers", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN)]  # noqa: RUF012

    @get("/", operation_id="admin_couriers_list", summary="Couriers, e.g. the pending queue")
    async def list_couriers(
        self,
        conn: NamedDependency[Connection],
        status: FromQuery[Literal["pending", "approved", "rejected", "suspended"] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> Page[Courier]:
        after = uuid.UUID(str(decode_cursor(cursor)[0])) if cursor else None
        items = await service.list_for_admin(conn, status, after, limit)
        next_cursor = encode_cursor(str(items[-1].id)) if len(items) == limit else None
        return Page(items=items, next_cursor=next_cursor)

    @post(
        "/{courier_id:uuid}/decision",
        operation_id="admin_couriers_decide",
        summary="Approve, reject, suspend",
    )
    async def decide(
        self,
        courier_id: FromPath[uuid.UUID],
        data: JSONBody[Decision],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> Courier:
        return await service.decide(conn, principal, courier_id, data, context=request_context(request))
