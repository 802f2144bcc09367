"""Response bodies of uploads."""

from __future__ import annotations

from api.schemas import Output


class StoredObject(Output):
    key: str
    purpose: str
    content_type: str
    size_bytes: int
    sha256: str
