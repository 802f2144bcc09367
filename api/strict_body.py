"""Strict JSON bodies: a string is never silently read as a number or a boolean.

Litestar converts request bodies with msgspec in lax mode (``"27.7"`` becomes
``27.7``, ``"true"`` becomes ``True``), which would let malformed clients
through unnoticed. This ``before_request`` hook decodes the raw body once more,
strictly, against the handler's ``data`` type, and answers 400 on the first
mismatch before the handler runs. Query and path parameters stay lax: they
arrive as strings by nature.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_JSON_MEDIA_TYPES = ("application/json", "application/merge-patch+json")


async def reject_lax_json(request: Request[Any, Any, Any]) -> None:
    """Validate the body strictly against the ``data`` annotation of the route handler."""
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    if parameter is None or not request.headers.get("content-type", "").startswith(_JSON_MEDIA_TYPES):
        return
    body = await request.body()
    if not body:
        return
    try:
        msgspec.json.decode(body, type=parameter.annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            "Validation failed for the request body",
            extra=[{"message": str(exc), "key": "data", "source": "body"}],
        ) from exc
    except msgspec.DecodeError:
        return  # malformed JSON: Litestar's own decoding reports it with its usual message
