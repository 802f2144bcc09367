"""``/v1/match``: ranked merchants around a customer; ``/v1/match/{id}/clicks``: feedback."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import Parameter

from api.domains.matching import service
from api.domains.matching.schemas import (
    DEFAULT_LIMIT,
    DEFAULT_RADIUS_M,
    MAX_LIMIT,
    MAX_RADIUS_M,
    ClickInput,
    ClickRecorded,
    MatchContext,
    MatchPage,
)
from api.security.guards import principal_of, requires_role
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.db import Connection


class MatchController(Controller):
    """The match handlers read the principal from the request instead of the ``principal``
    dependency: with two dependencies Litestar resolves them in an anyio task group per
    request, a measurable share of this hot path; with ``conn`` alone it awaits it directly."""

    path = "/v1/match"
    tags = ["matching"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    guards = [requires_role(Role.CUSTOMER)]  # noqa: RUF012

    @get(operation_id="match_get", summary="Open merchants around a point, ranked for this customer")
    async def get_match(
        self,
        state: State,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Connection],
        lat: Annotated[float, Parameter(ge=-90, le=90)],
        lng: Annotated[float, Parameter(ge=-180, le=180)],
        category: Annotated[str | None, Parameter(pattern="^[a-z_]{2,40}$")] = None,
        q: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        radius_m: Annotated[int, Parameter(ge=100, le=MAX_RADIUS_M)] = DEFAULT_RADIUS_M,
    ) -> MatchPage:
        context = MatchContext(lat=lat, lng=lng, category=category, q=q, limit=limit, radius_m=radius_m)
        return await _match(state, conn, principal_of(request), context)

    @post(
        operation_id="match_post", summary="The same match with richer context in the body", status_code=200
    )
    async def post_match(
        self,
        state: State,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Connection],
        data: MatchContext,
    ) -> MatchPage:
        return await _match(state, conn, principal_of(request), data)

    @post(
        "/{match_id:uuid}/clicks",
        operation_id="match_click",
        summary="Log a click on a served result (feedback for training)",
        status_code=201,
    )
    async def click(
        self,
        state: State,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        match_id: uuid.UUID,
        data: ClickInput,
    ) -> ClickRecorded:
        return await service.record_click(
            conn, state.get("events"), user_id=principal.user_id, match_id=match_id, body=data
        )


async def _match(state: State, conn: Connection, principal: Principal, context: MatchContext) -> MatchPage:
    return await service.match(
        conn,
        state.matching_index,
        state.scoring,
        state.events,
        user_id=principal.user_id,
        context=context,
        now=utc_now(),
    )
