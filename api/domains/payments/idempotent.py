"""Running a multi-step payment operation under the client's ``Idempotency-Key``.

Payment operations call a provider between two transactions, so the key is
claimed and committed *before* the provider call and the response stored
after it. A retry while the first request is still running gets a 409; a
retry after it finished replays the stored response; a failed request
(4xx) releases the key, so bad input leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Response

from api.domains.payments.repository import release_idempotency_key
from api.errors import Conflict
from api.idempotency import claim, remember, request_fingerprint, require_key
from nearx.db import Connection


async def run_once(
    conn: Connection,
    *,
    scope: str,
    key: str | None,
    body: Any,
    operation: Callable[[], Awaitable[msgspec.Struct]],
    status: int = 200,
) -> Response[Any]:
    """Run ``operation`` at most once per (scope, key); replay its response afterwards."""
    idempotency_key = require_key(key)
    async with conn.transaction():
        stored = await claim(conn, scope=scope, key=idempotency_key, fingerprint=request_fingerprint(body))
    if stored is not None:
        if stored.status is None:
            raise Conflict("a request with this Idempotency-Key is still in progress; retry later")
        return Response(stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"})
    try:
        result = await operation()
    except BaseException:
        async with conn.transaction():
            await release_idempotency_key(conn, scope, idempotency_key)
        raise
    payload = msgspec.to_builtins(result)
    async with conn.transaction():
        await remember(conn, scope=scope, key=idempotency_key, status=status, body=payload)
    return Response(payload, status_code=status)
