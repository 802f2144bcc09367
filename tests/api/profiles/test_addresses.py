"""Addresses: CRUD, H3 cells, city resolution, validation, pagination, and ownership."""

from __future__ import annotations

from typing import Any

import h3
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.settings import Settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

THAMEL = {"label": "Home", "line": "Thamel Marg 12, Kathmandu", "lat": 27.7154, "lng": 85.3123}
KOREGAON_PARK = {"label": "Work", "line": "North Main Road, Koregaon Park", "lat": 18.5362, "lng": 73.8940}


async def _count(conn: Any, table: str) -> int:
    row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
    return int(row["n"])


@pytest.mark.parametrize(("body", "city_id"), [(THAMEL, "kathmandu"), (KOREGAON_PARK, "pune")])
async def test_create_resolves_the_city_and_stores_h3_cells(
    client: Client, conn: Any, settings: Settings, body: dict[str, Any], city_id: str
) -> None:
    user_id = await insert_user(conn)
    response = await client.post("/v1/me/addresses", json=body, headers=auth(settings, user_id))
    assert response.status_code == 201, response.text
    address = response.json()
    assert address["city_id"] == city_id
    expected = {str(res): h3.latlng_to_cell(body["lat"], body["lng"], res) for res in settings.h3_resolutions}
    assert address["h3_cells"] == expected
    row = await (
        await conn.execute(
            "SELECT user_id, city_id, h3_r7, h3_r9, line FROM addresses WHERE id = %s", (address["id"],)
        )
    ).fetchone()
    assert row == {
        "user_id": user_id,
        "city_id": city_id,
        "h3_r7": expected["7"],
        "h3_r9": expected["9"],
        "line": body["line"],
    }
    event = await (await conn.execute("SELECT event_type, city_id, payload FROM outbox")).fetchone()
    assert event["event_type"] == "address.created"
    assert event["city_id"] == city_id
    assert "line" not in event["payload"]  # no PII in the event log


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**THAMEL, "lat": 19.0760, "lng": 72.8777}, 422),  # Mumbai: outside every city
        ({**THAMEL, "lat": 27.605, "lng": 85.205}, 422),  # in Kathmandu's bbox, outside its polygon
        ({**THAMEL, "lat": 91}, 400),
        ({**THAMEL, "lng": -181}, 400),
        ({**THAMEL, "lat": "NaN"}, 400),
        ({**THAMEL, "lat": "north"}, 400),
        ({**THAMEL, "line": ""}, 400),
        ({**THAMEL, "line": "   "}, 422),
        ({**THAMEL, "floor": 3}, 400),
        ({"label": "Home", "lat": 27.7, "lng": 85.3}, 400),  # no line
    ],
)
async def test_bad_addresses_are_refused_and_nothing_is_written(
    client: Client, conn: Any, settings: Settings, body: dict[str, Any], status: int
) -> None:
    user_id = await insert_user(conn)
    response = await client.post("/v1/me/addresses", json=body, headers=auth(settings, user_id))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _count(conn, "addresses") == 0
    assert await _count(conn, "outbox") == 0


async def test_outside_every_city_says_so(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    response = await client.post(
        "/v1/me/addresses", json={**THAMEL, "lat": 51.5, "lng": -0.12}, headers=auth(settings, user_id)
    )
    assert response.status_code == 422
    assert "outside every city" in response.json()["detail"]


async def test_nan_written_as_a_bare_json_token_is_refused(
    client: Client, conn: Any, settings: Settings
) -> None:
    user_id = await insert_user(conn)
    response = await client.post(
        "/v1/me/addresses",
        content=b'{"line": "x", "lat": NaN, "lng": 85.3}',
        headers={**auth(settings, user_id), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert await _count(conn, "addresses") == 0


async def test_read_update_delete(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    headers = auth(settings, user_id)
    created = (await client.post("/v1/me/addresses", json=THAMEL, headers=headers)).json()
    url = f"/v1/me/addresses/{created['id']}"
    assert (await client.get(url, headers=headers)).json() == created

    renamed = await client.patch(url, json={"label": None, "line": "Thamel Chowk 3"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json()["label"] is None
    assert renamed.json()["line"] == "Thamel Chowk 3"
    assert renamed.json()["lat"] == THAMEL["lat"]

    moved = await client.patch(
        url, json={"lat": KOREGAON_PARK["lat"], "lng": KOREGAON_PARK["lng"]}, headers=headers
    )
    assert moved.status_code == 200
    assert moved.json()["city_id"] == "pune"
    assert moved.json()["h3_cells"]["9"] == h3.latlng_to_cell(KOREGAON_PARK["lat"], KOREGAON_PARK["lng"], 9)
    assert moved.json()["line"] == "Thamel Chowk 3"

    half = await client.patch(url, json={"lat": 27.7}, headers=headers)
    assert half.status_code == 422
    away = await client.patch(url, json={"lat": 51.5, "lng": -0.12}, headers=headers)
    assert away.status_code == 422
    assert (await client.get(url, headers=headers)).json() == moved.json()

    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    assert (await client.delete(url, headers=headers)).status_code == 404
    events = await (await conn.execute("SELECT event_type FROM outbox ORDER BY position")).fetchall()
    assert [row["event_type"] for row in events] == [
        "address.created",
        "address.updated",
        "address.updated",
        "address.deleted",
    ]


async def test_list_is_cursor_paginated(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    headers = auth(settings, user_id)
    created = [
        (await client.post("/v1/me/addresses", json={**THAMEL, "label": f"A{i}"}, headers=headers)).json()[
            "id"
        ]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/me/addresses", params=params, headers=headers)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert pages == 3
    assert (await client.get("/v1/me/addresses", params={"limit": 0}, headers=headers)).status_code == 400
    assert (
        await client.get("/v1/me/addresses", params={"cursor": "garbage!"}, headers=headers)
    ).status_code == 422


async def test_idempotency_key_replays_the_first_create(
    client: Client, conn: Any, settings: Settings
) -> None:
    user_id = await insert_user(conn)
    headers = {**auth(settings, user_id), "Idempotency-Key": "add-home-1"}
    first = await client.post("/v1/me/addresses", json=THAMEL, headers=headers)
    again = await client.post("/v1/me/addresses", json=THAMEL, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await _count(conn, "addresses") == 1
    other = await client.post("/v1/me/addresses", json=KOREGAON_PARK, headers=headers)
    assert other.status_code == 422
    assert await _count(conn, "addresses") == 1


async def test_another_users_address_looks_absent(client: Client, conn: Any, settings: Settings) -> None:
    owner = await insert_user(conn)
    intruder = await insert_user(conn)
    address = (await client.post("/v1/me/addresses", json=THAMEL, headers=auth(settings, owner))).json()
    url = f"/v1/me/addresses/{address['id']}"
    theirs = auth(settings, intruder)
    assert (await client.get(url, headers=theirs)).status_code == 404
    assert (await client.patch(url, json={"label": "Mine"}, headers=theirs)).status_code == 404
    assert (await client.delete(url, headers=theirs)).status_code == 404
    assert (await client.get("/v1/me/addresses", headers=theirs)).json()["items"] == []
    assert (await client.get(url, headers=auth(settings, owner))).json() == address
