"""Domain errors and their RFC 9457 problem-details rendering.

Services raise these plain exceptions (no web framework inside the rules);
``create_app`` maps each to ``application/problem+json`` with a stable ``type``
URI, so clients can branch on the kind of failure rather than on prose.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"


class DomainError(Exception):
    """A failure the client caused or can act on; never a 5xx."""

    status: ClassVar[int] = HTTPStatus.BAD_REQUEST
    slug: ClassVar[str] = "bad-request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class InvalidInput(DomainError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "invalid-input"


class Unauthenticated(DomainError):
    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthenticated"


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN
    slug = "forbidden"


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    slug = "not-found"


class Conflict(DomainError):
    """The request is valid but clashes with the current state (e.g. an illegal transition)."""

    status = HTTPStatus.CONFLICT
    slug = "conflict"


class TooManyRequests(DomainError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    slug = "rate-limited"


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    slug: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    """Render one problem-details document."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return problem_response(
        request, status=exc.status, slug=exc.slug, detail=exc.detail, headers=exc.headers, extra=exc.extra
    )


_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    """Framework errors (validation, routing, auth middleware) as problem details too."""
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
        slug = "validation-failed"
    else:
        slug = _SLUG_BY_STATUS.get(exc.status_code, "error")
    if exc.status_code >= 500:
        slug, detail = "internal-error", "The server could not complete the request."
    else:
        detail = exc.detail
    return problem_response(
        request, status=exc.status_code, slug=slug, detail=detail, headers=exc.headers, extra=extra
    )


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Anything unforeseen is a 500 without internals; the traceback goes to the log."""
    request.logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, status=500, slug="internal-error", detail="The server could not complete the request."
    )
