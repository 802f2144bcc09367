"""Bodies are decoded strictly: a quoted number or boolean is a 400, and nothing is written."""

from __future__ import annotations

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.settings import Settings
from tests.api.profiles.users import auth, insert_user

THAMEL = {"label": "home", "line": "Thamel Marg 12", "lat": 27.7154, "lng": 85.3123}


@pytest.mark.parametrize(
    "body",
    [{**THAMEL, "lat": "27.7154"}, {**THAMEL, "lng": True}, {**THAMEL, "label": 7}],
    ids=["quoted-number", "boolean-as-number", "number-as-string"],
)
async def test_lax_values_are_refused_before_the_handler_runs(
    client: AsyncTestClient[Litestar],
    conn: psycopg.AsyncConnection[dict[str, object]],
    settings: Settings,
    body: dict[str, object],
) -> None:
    user_id = await insert_user(conn)
    response = await client.post("/v1/me/addresses", json=body, headers=auth(settings, user_id))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/validation-failed"
    count = await (await conn.execute("SELECT count(*) AS n FROM addresses")).fetchone()
    assert count == {"n": 0}


async def test_well_typed_body_still_passes(
    client: AsyncTestClient[Litestar], conn: psycopg.AsyncConnection[dict[str, object]], settings: Settings
) -> None:
    user_id = await insert_user(conn)
    response = await client.post("/v1/me/addresses", json=THAMEL, headers=auth(settings, user_id))
    assert response.status_code == 201, response.text
