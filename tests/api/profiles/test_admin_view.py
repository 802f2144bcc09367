"""GET /v1/admin/users/{id}: admins see the profile, support a PII-minimised one."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.profiles.service import mask_email, mask_phone
from api.security.principal import Role
from nearx.ids import new_id
from nearx.settings import Settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

THAMEL = {"label": "Home", "line": "Thamel Marg 12, Kathmandu", "lat": 27.7154, "lng": 85.3123}


async def _customer(client: Client, conn: Any, settings: Settings) -> Any:
    user_id = await insert_user(conn, phone="+9779812345678", email="asha@example.com", display_name="Asha")
    headers = auth(settings, user_id)
    patch = {"preferences": {"allergens": ["peanuts"]}, "consents": {"marketing": True}}
    assert (await client.patch("/v1/me", json=patch, headers=headers)).status_code == 200
    assert (await client.post("/v1/me/addresses", json=THAMEL, headers=headers)).status_code == 201
    return user_id


async def test_admin_sees_contact_data_and_preferences(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await _customer(client, conn, settings)
    admin = await insert_user(conn, Role.ADMIN)
    response = await client.get(
        f"/v1/admin/users/{user_id}", headers=auth(settings, admin, Role.ADMIN, mfa=True)
    )
    assert response.status_code == 200
    view = response.json()
    assert (view["phone"], view["email"], view["display_name"]) == (
        "+9779812345678",
        "asha@example.com",
        "Asha",
    )
    assert view["preferences"]["allergens"] == ["peanuts"]
    assert view["consents"]["marketing"]["granted"] is True
    assert (view["address_count"], view["address_cities"]) == (1, ["kathmandu"])
    assert view["pii_minimised"] is False
    assert "Thamel" not in response.text  # no staff view carries address lines


async def test_support_sees_a_minimised_view(client: Client, conn: Any, settings: Settings) -> None:
    user_id = await _customer(client, conn, settings)
    support = await insert_user(conn, Role.SUPPORT)
    response = await client.get(
        f"/v1/admin/users/{user_id}", headers=auth(settings, support, Role.SUPPORT, mfa=True)
    )
    assert response.status_code == 200
    view = response.json()
    assert view["phone"] == "+**********678"
    assert view["email"] == "a***@example.com"
    assert view["preferences"] is None  # allergens are health data: support does not need them
    assert view["display_name"] == "Asha"
    assert view["pii_minimised"] is True
    assert "9812345" not in response.text
    assert "Thamel" not in response.text


async def test_unknown_user_is_404(client: Client, conn: Any, settings: Settings) -> None:
    admin = await insert_user(conn, Role.ADMIN)
    response = await client.get(
        f"/v1/admin/users/{new_id()}", headers=auth(settings, admin, Role.ADMIN, mfa=True)
    )
    assert response.status_code == 404


def test_masks_keep_only_what_confirms_identity() -> None:
    assert mask_phone("+919812345678") == "+*********678"
    assert mask_phone(None) is None
    assert mask_email("ravi.k@example.in") == "r***@example.in"
    assert mask_email(None) is None
