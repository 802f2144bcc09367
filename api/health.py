"""Liveness and readiness."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from api.schemas import Output
from nearx.db import Connection
from serving.runtime import ScoringRuntime


class Health(Output):
    status: str
    database: str


class Readiness(Output):
    status: str
    """``ready``, or ``warming_up`` while the scoring runtime's first poll runs."""
    database: str
    scoring: str
    """``warm`` once models and online features that exist are loaded and warmed up."""


@get("/healthz", operation_id="health", tags=["platform"], opt={"public": True}, summary="Health check")
async def health(conn: NamedDependency[Connection]) -> Health:
    """Answers when the process is up and can reach PostgreSQL."""
    await conn.execute("SELECT 1")
    return Health(status="ok", database="ok")


@get("/readyz", operation_id="readiness", tags=["platform"], opt={"public": True}, summary="Readiness check")
async def readiness(conn: NamedDependency[Connection], state: State) -> Response[Readiness]:
    """200 once the scoring runtime is warm, 503 before: a load balancer holds traffic back until
    the first requests would no longer pay the models' and the feature store's first-call costs.
    Requests that arrive anyway are answered (by the fallbacks), never held."""
    await conn.execute("SELECT 1")
    scoring: ScoringRuntime = state.scoring
    if scoring.warmed:
        return Response(Readiness(status="ready", database="ok", scoring="warm"))
    return Response(Readiness(status="warming_up", database="ok", scoring="warming_up"), status_code=503)
