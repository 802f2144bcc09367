"""Opaque cursors for keyset pagination: lists never use OFFSET."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import msgspec

from api.errors import InvalidInput
from api.schemas import Output

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


T = TypeVar("T")


class Page(Output, Generic[T]):
    """One page of results and the cursor of the next (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*sort_key: Any) -> str:
    """Encode the sort key of the last item returned."""
    return base64.urlsafe_b64encode(msgspec.json.encode(list(sort_key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor`; a tampered one is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = msgspec.json.decode(base64.urlsafe_b64decode(padded))
    except (binascii.Error, msgspec.DecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid") from exc
    if not isinstance(value, list):
        raise InvalidInput("cursor is not valid")
    return value
