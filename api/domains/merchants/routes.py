"""HTTP surface of merchants and providers: apply, browse, configure, staff; admins decide."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from api.domains.identity.routes import request_context
from api.domains.merchants import service
from api.domains.merchants.schemas import (
    Decision,
    HoursInput,
    Merchant,
    MerchantApplication,
    PauseSwitch,
    SettingsPatch,
    StaffInput,
    StaffMember,
    StatusChange,
)
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from nearx.db import Connection
from nearx.settings import Settings


class MerchantController(Controller):
    path = "/v1/merchants"
    tags = ["merchants"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post("/", operation_id="merchants_apply", summary="Apply to become a merchant or provider")
    async def apply(
        self,
        data: JSONBody[MerchantApplication],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> Merchant:
        return await service.apply(conn, principal, data, settings)

    @get("/", operation_id="merchants_list", summary="Approved merchants, optionally in one city")
    async def list_merchants(
        self,
        conn: NamedDependency[Connection],
        city_id: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> Page[Merchant]:
        after = uuid.UUID(str(decode_cursor(cursor)[0])) if cursor else None
        items = await service.list_visible(conn, city_id=city_id, after=after, limit=limit)
        next_cursor = encode_cursor(str(items[-1].id)) if len(items) == limit else None
        return Page(items=items, next_cursor=next_cursor)

    @get("/{merchant_id:uuid}", operation_id="merchants_get", summary="One merchant")
    async def get_merchant(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Merchant:
        return await service.get_visible(conn, principal, merchant_id)

    @get("/{merchant_id:uuid}/history", operation_id="merchants_history", summary="Approval workflow history")
    async def history(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> list[StatusChange]:
        return await service.history(conn, principal, merchant_id)

    @patch("/{merchant_id:uuid}", operation_id="merchants_update", summary="Delivery radius and prep time")
    async def update(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[SettingsPatch],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Merchant:
        return await service.update_settings(conn, principal, merchant_id, data)

    @put("/{merchant_id:uuid}/pause", operation_id="merchants_pause", summary="The busy switch")
    async def pause(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[PauseSwitch],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Merchant:
        return await service.set_paused(conn, principal, merchant_id, data.paused)

    @put("/{merchant_id:uuid}/hours", operation_id="merchants_set_hours", summary="Weekly hours and holidays")
    async def set_hours(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[HoursInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Merchant:
        return await service.set_hours(conn, principal, merchant_id, data)

    @get("/{merchant_id:uuid}/staff", operation_id="merchants_list_staff", summary="Staff and their roles")
    async def list_staff(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> list[StaffMember]:
        return await service.list_staff(conn, principal, merchant_id)

    @post("/{merchant_id:uuid}/staff", operation_id="merchants_add_staff", summary="Add or re-role staff")
    async def add_staff(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[StaffInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> list[StaffMember]:
        return await service.add_staff(conn, principal, merchant_id, data, context=request_context(request))

    @delete(
        "/{merchant_id:uuid}/staff/{user_id:uuid}",
        operation_id="merchants_remove_staff",
        summary="Remove staff",
    )
    async def remove_staff(
        self,
        merchant_id: FromPath[uuid.UUID],
        user_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> None:
        await service.remove_staff(conn, principal, merchant_id, user_id, context=request_context(request))


class MerchantAdminController(Controller):
    path = "/v1/admin/merchants"
    tags = ["merchants", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN)]  # noqa: RUF012

    @post("/{merchant_id:uuid}/decision", operation_id="admin_merchants_decide", summary="Approve or reject")
    async def decide(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[Decision],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Merchant:
        return await service.decide(conn, principal, merchant_id, data)
