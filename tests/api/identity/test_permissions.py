"""Who may reach the identity routes: every platform role against every guarded route."""

from __future__ import annotations

import uuid
from typing import Any

from api.security.principal import Principal, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.settings import Settings
from tests.api.identity.conftest import Client, bearer, sign_in


def _token(settings: Settings, roles: set[Role], *, mfa: bool) -> str:
    principal = Principal(user_id=uuid.uuid4(), roles=frozenset(roles), session_id=uuid.uuid4(), mfa=mfa)
    return TokenCodec(settings).issue(principal, now=utc_now())


async def test_only_an_admin_with_a_second_factor_manages_roles(
    client: Client, settings: Settings, conn: Any
) -> None:
    await sign_in(client, settings, "+9779803333333")
    target = (await (await conn.execute("SELECT id FROM users")).fetchone())["id"]
    routes = [
        ("GET", f"/v1/admin/users/{target}/roles", None),
        ("POST", f"/v1/admin/users/{target}/roles", {"role": "courier"}),
        ("DELETE", f"/v1/admin/users/{target}/roles/customer", None),
    ]
    callers = [({role}, mfa) for role in Role for mfa in (False, True)] + [(set(Role) - {Role.ADMIN}, True)]
    for roles, mfa in callers:
        allowed = Role.ADMIN in roles and mfa
        headers = bearer(_token(settings, roles, mfa=mfa))
        for method, path, body in routes:
            if allowed and method != "GET":
                continue  # writes by the allowed caller are covered in test_mfa_and_roles
            response = await client.request(method, path, json=body, headers=headers)
            expected = 200 if allowed else 403
            assert response.status_code == expected, (sorted(roles), mfa, method, path)
    rows = await (await conn.execute("SELECT role FROM user_roles WHERE user_id = %s", (target,))).fetchall()
    assert [row["role"] for row in rows] == ["customer"]


async def test_support_also_needs_totp_at_sign_in(client: Client, settings: Settings, conn: Any) -> None:
    phone = "+9779804444444"
    await sign_in(client, settings, phone)
    await conn.execute(
        "INSERT INTO user_roles (user_id, role) SELECT id, 'support' FROM users WHERE phone = %s", (phone,)
    )
    body = await sign_in(client, settings, phone)
    assert body["status"] == "mfa_enrolment_required"
    principal = TokenCodec(settings).verify(body["access_token"])
    assert principal.roles == frozenset({Role.CUSTOMER})


async def test_sign_in_routes_are_public_and_the_rest_need_a_token(client: Client) -> None:
    for path in ("/v1/auth/logout", "/v1/auth/totp/enrol", "/v1/auth/totp/confirm"):
        response = await client.post(path, json={"code": "123456"})
        assert response.status_code == 401, path
    public = await client.post("/v1/auth/refresh", json={"refresh_token": "y" * 43})
    assert public.json()["detail"] == "the refresh token is not valid; sign in again"
