"""What may be stored: size and type limits per purpose, decided by sniffing the bytes.

The declared ``Content-Type`` is never trusted on its own: the magic bytes
(read by the ``filetype`` library) must name an allowed type, and it must agree
with the declaration, so a script renamed ``.pdf`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

import filetype

from api.errors import DomainError, InvalidInput

Purpose = Literal["document", "media"]


class PayloadTooLarge(DomainError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    slug = "payload-too-large"


class UnsupportedMediaType(DomainError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    slug = "unsupported-media-type"


@dataclass(frozen=True, slots=True)
class Policy:
    max_bytes: int
    types: dict[str, str]
    """Allowed MIME type → file extension used in the key."""


POLICIES: dict[str, Policy] = {
    "document": Policy(10 * 1024 * 1024, {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}),
    "media": Policy(5 * 1024 * 1024, {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}),
}
MAX_UPLOAD_BYTES = max(policy.max_bytes for policy in POLICIES.values())


def check(purpose: str, data: bytes, declared: str | None) -> tuple[str, str]:
    """Return ``(content_type, extension)`` of an acceptable upload, or raise a 4xx problem."""
    policy = POLICIES.get(purpose)
    if policy is None:
        raise InvalidInput(f"unknown purpose {purpose!r}; use one of {', '.join(sorted(POLICIES))}")
    if not data:
        raise InvalidInput("the upload is empty")
    if len(data) > policy.max_bytes:
        raise PayloadTooLarge(f"a {purpose} may be at most {policy.max_bytes} bytes")
    kind = filetype.guess(data)
    sniffed = kind.mime if kind is not None else None
    if sniffed not in policy.types:
        raise UnsupportedMediaType(f"a {purpose} must be one of: {', '.join(sorted(policy.types))}")
    if declared is not None and declared.split(";")[0].strip().lower() != sniffed:
        raise UnsupportedMediaType(f"the content is {sniffed}, not {declared}")
    return sniffed, policy.types[sniffed]
