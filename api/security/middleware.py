"""Bearer-token authentication: sets ``request.user`` to a :class:`Principal`.

Public routes (health, schema, sign-in) opt out with ``opt={"public": True}``
or sit under an excluded path; every other route needs a valid token.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.errors import Unauthenticated
from api.security.tokens import TokenCodec


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
        return AuthenticationResult(user=principal, auth=token)
