"""The async connection pool every request borrows from.

Connections are in autocommit mode with dict rows: a service opens
``async with conn.transaction():`` around each unit of work, so it decides what
is atomic (for example, recording a failed sign-in attempt even though the
request then fails). Repositories may ask for typed rows per cursor.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, TypeAlias

import msgspec
from psycopg import AsyncConnection
from psycopg.pq import ConnStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

Connection: TypeAlias = AsyncConnection[DictRow]
Pool: TypeAlias = AsyncConnectionPool[Connection]

RECENTLY_USED_S = 2.0
"""A connection returned healthy this recently is lent without a check round trip."""


class RecentUseCheck:
    """The pool's ``check``: a round trip (``AsyncConnectionPool.check_connection``) only for
    connections that sat idle longer than ``recent_s``.

    Why: checking every checkout costs a round trip per borrow, and a request borrows twice
    (the session lookup, then its own work), which on a busy server is a measurable share
    of a short request. A connection that just finished a request without error is very
    likely still good; one idle for a while (a restarted or failed-over server, an idle
    timeout) is checked, and the pool replaces it if the check fails. The window is what is
    traded: a server that drops connections within ``recent_s`` of their last use fails
    the next request on each of them once, after which the pool discards them.
    """

    def __init__(self, recent_s: float = RECENTLY_USED_S) -> None:
        self.recent_s = recent_s
        self._returned_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    async def returned(self, conn: Connection) -> None:
        """The pool's ``reset`` hook: runs when a connection comes back in a clean state."""
        self._returned_at[conn] = time.monotonic()

    async def check(self, conn: Connection) -> None:
        returned_at = self._returned_at.pop(conn, None)
        recent = returned_at is not None and time.monotonic() - returned_at < self.recent_s
        if not recent or conn.pgconn.status != ConnStatus.OK:
            await AsyncConnectionPool.check_connection(conn)


async def use_msgspec_json(conn: Connection) -> None:
    """JSON parameters and columns through msgspec instead of the stdlib ``json``: several
    times faster on the event payloads every write carries, and it encodes UUIDs and
    datetimes itself."""
    set_json_dumps(msgspec.json.encode, conn)
    set_json_loads(msgspec.json.decode, conn)


def create_pool(
    url: str, *, min_size: int, max_size: int, timeout_s: float, recent_s: float = RECENTLY_USED_S
) -> Pool:
    """A closed pool; open it (and ``wait()``) in the application's lifespan."""
    kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
    check = RecentUseCheck(recent_s)
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        kwargs=kwargs,
        connection_class=AsyncConnection[DictRow],
        configure=use_msgspec_json,
        check=check.check,
        reset=check.returned,
        name="nearx",
    )
