"""GET/PATCH /v1/me: merge-patch semantics, strict validation, consent evidence."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.dietary import Allergen
from nearx.ids import new_id
from nearx.settings import Settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

DEFAULT_PREFERENCES = {
    "eco_first": False,
    "price_sensitivity": "medium",
    "dietary_tags": [],
    "allergens": [],
    "favourite_merchant_ids": [],
}


async def _state(conn: Any, user_id: Any) -> dict[str, Any]:
    """Everything a PATCH may write, to prove a refused one wrote nothing."""
    user = await (
        await conn.execute("SELECT display_name, locale, updated_at FROM users WHERE id = %s", (user_id,))
    ).fetchone()
    profile = await (await conn.execute("SELECT * FROM profiles WHERE user_id = %s", (user_id,))).fetchone()
    consents = await (
        await conn.execute("SELECT count(*) AS n FROM consent_events WHERE user_id = %s", (user_id,))
    ).fetchone()
    events = await (await conn.execute("SELECT count(*) AS n FROM outbox")).fetchone()
    return {"user": user, "profile": profile, "consents": consents, "events": events}


async def test_a_new_user_reads_defaults(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn, phone="+9779812345678", display_name="Asha")
    response = await client.get("/v1/me", headers=auth(settings, user_id))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user_id)
    assert body["phone"] == "+9779812345678"
    assert body["display_name"] == "Asha"
    assert body["locale"] == "en"
    assert body["roles"] == ["customer"]
    assert body["preferences"] == DEFAULT_PREFERENCES
    assert body["consents"]["marketing"] == {"granted": False, "granted_at": None, "withdrawn_at": None}


async def test_patch_merges_and_leaves_absent_fields_alone(
    client: Client, conn: Any, settings: Settings
) -> None:
    user_id = await insert_user(conn, display_name="Asha")
    headers = auth(settings, user_id)
    merchant = "0190b5d2-6f00-7000-8000-000000000001"
    first = await client.patch(
        "/v1/me",
        json={
            "locale": "ne_np",
            "preferences": {
                "eco_first": True,
                "price_sensitivity": "high",
                "dietary_tags": ["vegetarian", "jain", "vegetarian"],
                "allergens": ["peanuts", "milk"],
                "favourite_merchant_ids": [merchant],
            },
        },
        headers=headers,
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["display_name"] == "Asha"  # absent: untouched
    assert body["locale"] == "ne-NP"  # normalised BCP 47
    assert body["preferences"]["dietary_tags"] == ["vegetarian", "jain"]  # repeats dropped, order kept
    assert body["preferences"]["allergens"] == ["peanuts", "milk"]
    assert body["preferences"]["favourite_merchant_ids"] == [merchant]

    second = await client.patch(
        "/v1/me",
        json={"display_name": None, "preferences": {"allergens": []}},
        headers={**headers, "Content-Type": "application/merge-patch+json"},
    )
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["display_name"] is None  # null clears
    assert body["preferences"]["allergens"] == []  # arrays are replaced whole
    assert body["preferences"]["eco_first"] is True  # siblings in the nested object untouched
    assert body["preferences"]["dietary_tags"] == ["vegetarian", "jain"]
    assert (await client.get("/v1/me", headers=headers)).json() == body

    event = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'profile.updated' ORDER BY position DESC LIMIT 1"
        )
    ).fetchone()
    assert event["payload"] == {"user_id": str(user_id), "fields": ["allergens", "display_name"]}


async def test_null_preferences_reset_to_defaults(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    headers = auth(settings, user_id)
    patch = {"preferences": {"eco_first": True, "allergens": ["fish"], "price_sensitivity": "low"}}
    assert (await client.patch("/v1/me", json=patch, headers=headers)).status_code == 200
    reset = await client.patch("/v1/me", json={"preferences": None}, headers=headers)
    assert reset.status_code == 200
    assert reset.json()["preferences"] == DEFAULT_PREFERENCES


async def test_every_eu_allergen_is_accepted(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    everything = [allergen.value for allergen in Allergen]
    assert len(everything) == 14
    response = await client.patch(
        "/v1/me", json={"preferences": {"allergens": everything}}, headers=auth(settings, user_id)
    )
    assert response.status_code == 200
    assert response.json()["preferences"]["allergens"] == everything


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"nickname": "A"}, 400),  # unknown field
        ({"preferences": {"eco_first": "yes"}}, 400),  # wrong type
        ({"preferences": {"price_sensitivity": "extreme"}}, 400),  # not in the enum
        ({"preferences": {"allergens": ["gluten", "chocolate"]}}, 400),  # not an EU allergen
        ({"preferences": {"dietary_tags": ["carnivore"]}}, 400),
        ({"preferences": {"favourite_merchant_ids": ["not-a-uuid"]}}, 400),
        ({"preferences": {"colour": "blue"}}, 400),  # unknown nested field
        ({"consents": {"marketing": "sure"}}, 400),
        ({"consents": {"newsletter": True}}, 400),
        ({"locale": None}, 400),  # locale cannot be removed
        ({"locale": "xx-YY"}, 422),  # well formed, names no language
        ({"locale": "english"}, 422),
        ({"display_name": "   "}, 422),
        ({"display_name": ""}, 400),
        ({"display_name": "x" * 81}, 400),
        ({"display_name": "A", "locale": "zz-QQ"}, 422),  # one bad field: the good one is not written either
    ],
)
async def test_bad_patches_are_problems_and_change_nothing(
    client: Client, conn: Any, settings: Settings, body: dict[str, Any], status: int
) -> None:
    user_id = await insert_user(conn, display_name="Asha")
    before = await _state(conn, user_id)
    response = await client.patch("/v1/me", json=body, headers=auth(settings, user_id))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    assert await _state(conn, user_id) == before


async def test_malformed_json_is_400_and_changes_nothing(
    client: Client, conn: Any, settings: Settings
) -> None:
    user_id = await insert_user(conn, display_name="Asha")
    before = await _state(conn, user_id)
    response = await client.patch(
        "/v1/me",
        content=b'{"display_name": "B"',
        headers={**auth(settings, user_id), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert await _state(conn, user_id) == before


async def test_consents_keep_their_history(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await insert_user(conn)
    headers = auth(settings, user_id)
    granted = await client.patch("/v1/me", json={"consents": {"marketing": True}}, headers=headers)
    assert granted.status_code == 200
    marketing = granted.json()["consents"]["marketing"]
    assert marketing["granted"] is True
    assert marketing["granted_at"] is not None
    assert marketing["withdrawn_at"] is None

    # Sending the current state again records nothing new.
    await client.patch("/v1/me", json={"consents": {"marketing": True}}, headers=headers)
    withdrawn = await client.patch(
        "/v1/me", json={"consents": {"marketing": False, "analytics": True}}, headers=headers
    )
    consents = withdrawn.json()["consents"]
    assert consents["marketing"]["granted"] is False
    assert consents["marketing"]["granted_at"] == marketing["granted_at"]  # the grant is not overwritten
    assert consents["marketing"]["withdrawn_at"] >= marketing["granted_at"]
    assert consents["analytics"]["granted"] is True

    rows = await (
        await conn.execute(
            "SELECT purpose, granted, source FROM consent_events WHERE user_id = %s "
            "ORDER BY recorded_at, purpose",
            (user_id,),
        )
    ).fetchall()
    assert [(row["purpose"], row["granted"], row["source"]) for row in rows] == [
        ("marketing", True, "user"),
        ("analytics", True, "user"),
        ("marketing", False, "user"),
    ]
    events = await (
        await conn.execute(
            "SELECT event_type FROM outbox WHERE event_type LIKE 'consent.%%' ORDER BY position"
        )
    ).fetchall()
    assert [row["event_type"] for row in events] == [
        "consent.granted",
        "consent.withdrawn",
        "consent.granted",
    ]


async def test_a_token_for_an_unknown_user_is_401(client: Client, settings: Settings) -> None:
    response = await client.get("/v1/me", headers=auth(settings, new_id()))
    assert response.status_code == 401
