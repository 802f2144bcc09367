"""Bearer-token authentication: sets ``request.user`` to a :class:`Principal`.

Public routes (health, schema, sign-in) opt out with ``opt={"public": True}``
or sit under an excluded path; every other route needs a valid token whose
session has not been revoked (logout, refresh-token reuse, account deletion,
loss of a privileged role).

Revocation bound: the session is looked up in this worker's revocation list
(:mod:`api.security.revocations`), not in the database. A revocation made by this
worker is refused from the moment its transaction commits (logout, refresh-token
reuse, role revocation, account deletion); one made by another worker or directly in
the database, within
one poll interval, ``NEARX_REVOCATION_POLL_S`` (1 s by default), plus the poll's
query. If polls fail, the list is trusted for at most 5 intervals since its last
successful refresh; after that every request asks the database again, so the
bound never exceeds 5 intervals. Without a list (no lifespan, or the
setting at 0) every request asks the database, and without a pool nothing is
refused for revocation.
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
from api.security.revocations import RevocationList
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
    """The worker's revocation list when it is current, else one primary-key lookup.

    Only a session known AND revoked is refused: the signature is what
    authenticates, and tokens minted without a stored session (tests, tools)
    keep working.
    """
    state = connection.app.state
    revocations: RevocationList | None = getattr(state, "revocations", None)
    if revocations is not None and revocations.is_current():
        return session_id in revocations
    pool: Pool | None = getattr(state, "pool", None)
    if pool is None:
        return False
    async with pool.connection() as conn:
        return await session_is_revoked(conn, session_id)
