"""``GET /metrics``: Prometheus exposition of the process (scoring, degradations, model versions)."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@get(
    "/metrics", operation_id="metrics", tags=["platform"], opt={"public": True}, summary="Prometheus metrics"
)
async def metrics() -> Response[bytes]:
    """Public like ``/healthz`` (scrapers carry no token); it exposes counts, never personal data."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
