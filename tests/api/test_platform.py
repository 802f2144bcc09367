"""The platform surface every client relies on: health, OpenAPI, problem details, auth."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_health_reaches_the_database(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_lists_every_route_with_an_operation_id(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/healthz" in paths
    operations = [op for item in paths.values() for method, op in item.items() if method != "parameters"]
    missing = [op.get("summary") for op in operations if not op.get("operationId")]
    assert not missing
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)), "operation ids must be unique"


async def test_unknown_route_is_a_problem_document(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert body["type"] == "/problems/not-found"
