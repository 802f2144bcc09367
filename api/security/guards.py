"""Route guards: which platform roles may call a route.

Privileged roles (admin, support) also need a second factor in the session, so
a stolen one-time code alone never opens the admin tools.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from api.security.principal import PRIVILEGED_ROLES, Principal, Role

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]
"""Guards are coroutines: Litestar runs a plain function guard in a worker thread on every
request, a thread handoff that costs more than the check itself."""


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.user
    if not isinstance(principal, Principal):
        raise PermissionDeniedException("no authenticated principal")
    return principal


def requires_role(*roles: Role) -> Guard:
    """Allow callers holding any of ``roles``; privileged roles also need ``mfa``."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        held = principal.roles & allowed
        if not held:
            raise PermissionDeniedException(f"requires one of the roles: {', '.join(sorted(allowed))}")
        if held <= PRIVILEGED_ROLES and not principal.mfa:
            raise PermissionDeniedException("this route requires a second factor (TOTP) in the session")

    return guard
