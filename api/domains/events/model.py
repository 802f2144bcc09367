"""An event as it travels from the outbox to buses and consumers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox row, minus its position (which is only meaningful inside the outbox)."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: uuid.UUID
    city_id: str | None
    payload: dict[str, Any]
    occurred_at: datetime

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return msgspec.json.decode(raw, type=cls)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(**{field: row[field] for field in cls.__struct_fields__})
