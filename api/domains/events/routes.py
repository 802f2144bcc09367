"""HTTP surface of merchant webhooks: subscribe, list, and see deliveries with their attempts."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from api.domains.events import webhooks
from api.domains.events.schemas import Delivery, Webhook, WebhookCreated, WebhookInput
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.security.principal import Principal
from nearx.db import Connection
from nearx.settings import Settings


class WebhookController(Controller):
    path = "/v1/merchants/{merchant_id:uuid}/webhooks"
    tags = ["webhooks"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post("/", operation_id="webhooks_subscribe", summary="Subscribe a URL to event types")
    async def subscribe(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> WebhookCreated:
        return await webhooks.subscribe(conn, principal, merchant_id, data, pepper=settings.pepper)

    @get("/", operation_id="webhooks_list", summary="The merchant's webhooks")
    async def list_webhooks(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> list[Webhook]:
        return await webhooks.subscriptions(conn, principal, merchant_id)

    @get(
        "/{webhook_id:uuid}/deliveries", operation_id="webhooks_deliveries", summary="Deliveries and attempts"
    )
    async def deliveries(
        self,
        merchant_id: FromPath[uuid.UUID],
        webhook_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> list[Delivery]:
        return await webhooks.deliveries(conn, principal, merchant_id, webhook_id, limit)
