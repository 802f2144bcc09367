"""Marketplace fixtures: users with tokens, and approved merchants ready to sell."""

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

KTM = {"lat": 27.7000, "lng": 85.3200}
"""A point inside the Kathmandu boundary."""


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID
    headers: dict[str, str]


MakeUser = Callable[..., Awaitable[Actor]]


@pytest.fixture
def make_user(app: Litestar, conn: Any) -> MakeUser:
    """Insert a user with platform roles and return it with a bearer header."""

    async def make(*roles: Role, mfa: bool = False) -> Actor:
        user_id = new_id()
        await conn.execute("INSERT INTO users (id, display_name) VALUES (%s, %s)", (user_id, "t"))
        for role in roles or (Role.CUSTOMER,):
            await conn.execute(
                "INSERT INTO user_roles (user_id, role) VALUES (%s, %s)", (user_id, role.value)
            )
        principal = Principal(
            user_id=user_id, roles=frozenset(roles or (Role.CUSTOMER,)), session_id=new_id(), mfa=mfa
        )
        token = app.state.token_codec.issue(principal, now=utc_now())
        return Actor(user_id, {"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture
async def admin(make_user: MakeUser) -> Actor:
    return await make_user(Role.ADMIN, mfa=True)


MakeMerchant = Callable[..., Awaitable[tuple[Actor, dict[str, Any]]]]


@pytest.fixture
def make_merchant(client: AsyncTestClient[Litestar], make_user: MakeUser, admin: Actor) -> MakeMerchant:
    """Apply as a new owner and have the admin approve; returns (owner, merchant)."""

    async def make(**overrides: Any) -> tuple[Actor, dict[str, Any]]:
        owner = await make_user(Role.MERCHANT)
        body = {"kind": "merchant", "category": "grocery", "name": "Shop", **KTM, **overrides}
        response = await client.post("/v1/merchants", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        merchant = response.json()
        decided = await client.post(
            f"/v1/admin/merchants/{merchant['id']}/decision",
            json={"decision": "approve", "reason": "documents verified"},
            headers=admin.headers,
        )
        assert decided.status_code == 201, decided.text
        return owner, decided.json()

    return make


MakeProduct = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_product(client: AsyncTestClient[Litestar]) -> MakeProduct:
    """List a one-variant product (or the given variants) at a merchant as its owner."""

    async def make(owner: Actor, merchant: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        body = {
            "name": "Momo",
            "category": "food",
            "variants": [
                {
                    "sku": f"sku-{new_id().hex[:8]}",
                    "name": "plate",
                    "price_minor": 25_000,
                    "initial_stock": 10,
                }
            ],
            **overrides,
        }
        response = await client.post(
            f"/v1/merchants/{merchant['id']}/products", json=body, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make
