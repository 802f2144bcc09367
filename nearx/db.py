"""The async connection pool every request borrows from.

Connections are in autocommit mode with dict rows: a service opens
``async with conn.transaction():`` around each unit of work, so it decides what
is atomic (for example, recording a failed sign-in attempt even though the
request then fails). Repositories may ask for typed rows per cursor.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Connection: TypeAlias = AsyncConnection[DictRow]
Pool: TypeAlias = AsyncConnectionPool[Connection]


def create_pool(url: str, *, min_size: int, max_size: int, timeout_s: float) -> Pool:
    """A closed pool; open it (and ``wait()``) in the application's lifespan."""
    kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        kwargs=kwargs,
        connection_class=AsyncConnection[DictRow],
        check=AsyncConnectionPool.check_connection,
        name="nearx",
    )
