"""``/v1/me`` (the caller's own profile, addresses and data rights) and ``/v1/admin/users``."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.domains.profiles import service
from api.domains.profiles.schemas import (
    Address,
    AddressCreate,
    AddressPatch,
    AdminUserView,
    DataExport,
    Me,
    MePatch,
)
from api.idempotency import IDEMPOTENCY_HEADER
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from api.storage.routes import object_store
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.settings import Settings

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_HEADER,
        description="optional; a retry with the same key replays the first answer",
    ),
]


class MeController(Controller):
    """Every route acts on the caller's own data: there is no user id to tamper with."""

    path = "/v1/me"
    tags = ["profile"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get("/", operation_id="getMe", summary="The caller's profile")
    async def get_me(self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]) -> Me:
        return await service.get_me(conn, principal.user_id)

    @patch("/", operation_id="patchMe", summary="Change the caller's profile (JSON merge patch)")
    async def patch_me(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        data: JSONBody[MePatch],
    ) -> Me:
        return await service.patch_me(conn, principal.user_id, data, utc_now())

    @delete(
        "/", operation_id="deleteMe", summary="Erase the caller's account", status_code=HTTP_204_NO_CONTENT
    )
    async def delete_me(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        state: State,
        settings: NamedDependency[Settings],
    ) -> None:
        """Pseudonymise the account; repeating it is harmless (204 again, nothing more happens)."""
        await service.erase_account(
            conn, object_store(state, settings), principal.user_id, utc_now(), state.get("revocations")
        )

    @get("/export", operation_id="exportMe", summary="All of the caller's data as JSON")
    async def export_me(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]
    ) -> DataExport:
        return await service.export_data(conn, principal.user_id, utc_now())

    @post("/addresses", operation_id="createAddress", summary="Add an address", status_code=HTTP_201_CREATED)
    async def create_address(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        data: JSONBody[AddressCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Address:
        return await service.create_address(
            conn,
            principal.user_id,
            data,
            resolutions=settings.h3_resolutions,
            now=utc_now(),
            idempotency_key=idempotency_key,
        )

    @get("/addresses", operation_id="listAddresses", summary="The caller's addresses, oldest first")
    async def list_addresses(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[Address]:
        items, next_cursor = await service.list_addresses(conn, principal.user_id, cursor=cursor, limit=limit)
        return Page(items=items, next_cursor=next_cursor)

    @get("/addresses/{address_id:uuid}", operation_id="getAddress", summary="One of the caller's addresses")
    async def get_address(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        address_id: FromPath[uuid.UUID],
    ) -> Address:
        return await service.get_address(conn, principal.user_id, address_id)

    @patch("/addresses/{address_id:uuid}", operation_id="patchAddress", summary="Change an address")
    async def patch_address(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        address_id: FromPath[uuid.UUID],
        data: JSONBody[AddressPatch],
    ) -> Address:
        return await service.patch_address(
            conn, principal.user_id, address_id, data, resolutions=settings.h3_resolutions, now=utc_now()
        )

    @delete(
        "/addresses/{address_id:uuid}",
        operation_id="deleteAddress",
        summary="Delete an address",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_address(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        address_id: FromPath[uuid.UUID],
    ) -> None:
        await service.delete_address(conn, principal.user_id, address_id)


class AdminUsersController(Controller):
    path = "/v1/admin/users"
    tags = ["admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN, Role.SUPPORT)]  # noqa: RUF012

    @get("/{user_id:uuid}", operation_id="adminGetUser", summary="A user's profile as staff see it")
    async def get_user(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        user_id: FromPath[uuid.UUID],
    ) -> AdminUserView:
        return await service.admin_view(conn, principal, user_id)
