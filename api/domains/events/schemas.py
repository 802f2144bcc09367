"""Request and response bodies of merchant webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from api.schemas import Input, Output

EventType = Annotated[str, msgspec.Meta(pattern="^[a-z_]+\\.[a-z_]+$")]
HttpsUrl = Annotated[str, msgspec.Meta(pattern="^https://[^\\s]{1,2000}$")]


class WebhookInput(Input, kw_only=True):
    url: HttpsUrl
    event_types: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=50)]


class Webhook(Output):
    id: uuid.UUID
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str
    """Shown once: verify ``X-Nearx-Signature`` with it (HMAC-SHA256 of "<t>.<body>")."""


class Attempt(Output):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(Output):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: list[Attempt]
    created_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None
    """When a pending delivery is tried again; ``None`` once it succeeded or failed."""
