"""Liveness and readiness."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from api.schemas import Output
from nearx.db import Connection


class Health(Output):
    status: str
    database: str


@get("/healthz", operation_id="health", tags=["platform"], opt={"public": True}, summary="Health check")
async def health(conn: NamedDependency[Connection]) -> Health:
    """Answers when the process is up and can reach PostgreSQL."""
    await conn.execute("SELECT 1")
    return Health(status="ok", database="ok")
