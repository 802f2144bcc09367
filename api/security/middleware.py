"""Bearer-token authentication: sets ``request.user`` to a :class:`Principal`.

Public routes (health, schema, sign-in) opt out with ``opt={"public": True}``
or sit under an excluded path; every other route needs a valid token whose
session has not been revoked (logout, refresh-token reuse, account deletion).
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.domains.identity.repository import session_is_revoked
from api.errors import Unauthenticated
from api.security.tokens import TokenCodec
from nearx.db import Pool


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not token and connection.scope["type"] == ScopeType.WEBSOCKET:
            token, scheme = connection.query_params.get("access_token", ""), "bearer"
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("a bearer access token is required")
        codec: TokenCodec = connection.app.state.token_codec
        try:
            principal = codec.verify(token.strip())
        except Unauthenticated as exc:
            raise NotAuthorizedException(exc.detail) from exc
        if await _session_revoked(connection, principal.session_id):
            raise NotAuthorizedException("the session has been revoked")
        return AuthenticationResult(user=principal, auth=token)


async def _session_revoked(connection: ASGIConnection[Any, Any, Any, Any], session_id: uuid.UUID) -> bool:
    """One primary-key lookup per request, so logout, token-reuse detection and account
    deletion take effect at once rather than when the short-lived token expires.

    Only a session known AND revoked is refused: the signature is what
    authenticates, and tokens minted without a stored session (tests, tools)
    keep working.
    """
    pool: Pool | None = getattr(connection.app.state, "pool", None)
    if pool is None:
        return False
    async with pool.connection() as conn:
        return await session_is_revoked(conn, session_id)
