"""Delivery fixtures: users with tokens, and approved couriers on shift."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.ids import new_id


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID
    headers: dict[str, str]
    app: Litestar

    def with_roles(self, *roles: Role, mfa: bool = False) -> Actor:
        """A fresh token for the same user (roles are read from the token, as after a re-login)."""
        principal = Principal(user_id=self.user_id, roles=frozenset(roles), session_id=new_id(), mfa=mfa)
        token = self.app.state.token_codec.issue(principal, now=utc_now())
        return Actor(self.user_id, {"Authorization": f"Bearer {token}"}, self.app)


MakeUser = Callable[..., Awaitable[Actor]]


@pytest.fixture
def make_user(app: Litestar, conn: Any) -> MakeUser:
    async def make(*roles: Role, mfa: bool = False) -> Actor:
        user_id = new_id()
        await conn.execute("INSERT INTO users (id, display_name) VALUES (%s, %s)", (user_id, "t"))
        granted = roles or (Role.CUSTOMER,)
        for role in granted:
            await conn.execute(
                "INSERT INTO user_roles (user_id, role) VALUES (%s, %s)", (user_id, role.value)
            )
        return Actor(user_id, {}, app).with_roles(*granted, mfa=mfa)

    return make


@pytest.fixture
async def admin(make_user: MakeUser) -> Actor:
    return await make_user(Role.ADMIN, mfa=True)


APPLICATION = {
    "city_id": "kathmandu",
    "mode": "ev_scooter",
    "bag_slots": 2,
    "max_weight_g": 15000,
    "vehicle_plate": "BA 12 PA 3456",
    "documents": [
        {"kind": "driving_licence", "url": "https://files.example/licence.jpg"},
        {"kind": "id_card", "url": "https://files.example/id.jpg"},
    ],
}

MakeCourier = Callable[..., Awaitable[tuple[Actor, dict[str, Any]]]]


@pytest.fixture
def make_courier(client: AsyncTestClient[Litestar], make_user: MakeUser, admin: Actor) -> MakeCourier:
    """Apply, get approved, and (by default) go online; returns the courier with a courier token."""

    async def make(online: bool = True, **overrides: Any) -> tuple[Actor, dict[str, Any]]:
        user = await make_user(Role.CUSTOMER)
        applied = await client.post(
            "/v1/couriers",
            json={**APPLICATION, **overrides},
            headers={**user.headers, "Idempotency-Key": str(new_id())},
        )
        assert applied.status_code == 201, applied.text
        decided = await client.post(
            f"/v1/admin/couriers/{applied.json()['id']}/decision",
            json={"decision": "approve", "reason": "documents verified"},
            headers=admin.headers,
        )
        assert decided.status_code == 201, decided.text
        courier = user.with_roles(Role.CUSTOMER, Role.COURIER)
        body = decided.json()
        if online:
            shifted = await client.post(
                "/v1/couriers/me/shift", json={"shift": "online"}, headers=courier.headers
            )
            assert shifted.status_code == 200, shifted.text
            body = shifted.json()
        return courier, body

    return make
