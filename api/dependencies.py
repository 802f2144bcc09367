"""Request-scoped dependencies: settings, one pooled connection, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from api.security.principal import Principal
from nearx.db import Connection, Pool
from nearx.settings import Settings


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


async def provide_connection(state: State) -> AsyncIterator[Connection]:
    """One pooled connection per request (autocommit; services open their transactions)."""
    pool: Pool = state.pool
    async with pool.connection() as conn:
        yield conn


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal), "route is public; it cannot ask for a principal"
    return principal


DEPENDENCIES = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "conn": Provide(provide_connection),
    "principal": Provide(provide_principal, sync_to_thread=False),
}
