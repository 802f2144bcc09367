"""Who may reach what: a table-driven matrix over roles and the routes that exist.

The generic halves enumerate ``app.routes``, so every route another team adds
later is covered without editing this file: each non-public route refuses an
anonymous or forged caller with a 401 problem, and each ``/v1/admin`` route
refuses non-staff roles and staff without a second factor with a 403. The
explicit half proves a customer cannot reach another user's profile data.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.security.principal import Role
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.postgres import drop_database, ensure_database, with_database
from nearx.settings import Settings, load_settings
from tests.api.profiles.users import auth, insert_user

Client = AsyncTestClient[Litestar]

MIDDLEWARE_EXCLUDED = re.compile(r"^/schema|^/healthz$")
_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_SAMPLE_BY_TYPE = {"uuid": "0190b5d2-6f00-7000-8000-000000000001", "int": "1", "str": "x", "path": "x"}
NON_STAFF = (Role.CUSTOMER, Role.MERCHANT, Role.PROVIDER, Role.COURIER)


def _concrete(path: str) -> str:
    return _PATH_PARAM.sub(lambda match: _SAMPLE_BY_TYPE.get(match.group(2), "1"), path)


def _operations(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """``(method, concrete path, public)`` for every HTTP operation the app serves."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or MIDDLEWARE_EXCLUDED.match(route.path):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                yield method, _concrete(route.path), bool(handler.opt.get("public"))


def _operations_of_the_real_app() -> list[tuple[str, str]]:
    app = create_app(load_settings({"NEARX_JWT_KEYS": "matrix:" + "k" * 40}), db_url="postgresql://unused")
    # sorted: pytest-xdist workers must collect the same ids in the same order
    return sorted({(method, path) for method, path, public in _operations(app) if not public})


PROTECTED = _operations_of_the_real_app()
ADMIN = [(method, path) for method, path in PROTECTED if path.startswith("/v1/admin/")]


def _forged(settings: Settings) -> dict[str, str]:
    """A well-formed token with our kid, signed with a key we never issued."""
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(new_id()),
        "sid": str(new_id()),
    }
    now = int(utc_now().timestamp())
    token = jwt.encode(
        {**claims, "roles": ["admin"], "mfa": True, "iat": now, "exp": now + 600},
        "not-our-secret-" + "x" * 32,
        algorithm="HS256",
        headers={"kid": settings.signing_keys[0].kid},
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({"NEARX_HOME": str(Path(tmp_path_factory.mktemp("matrix")) / "nearx")})


@pytest.fixture(scope="module")
async def shared_client(
    pg_admin_url: str, template_db: str, shared_settings: Settings
) -> AsyncIterator[Client]:
    """One app and database for the generic checks: they refuse every request, so nothing is written."""
    name = f"nearx_matrix_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name, template=template_db)
    try:
        app = create_app(shared_settings, db_url=with_database(pg_admin_url, name))
        async with AsyncTestClient(app=app) as test_client:
            yield test_client
    finally:
        drop_database(pg_admin_url, name)


def test_the_matrix_sees_the_routes() -> None:
    assert ("GET", "/v1/me") in PROTECTED
    assert ("GET", f"/v1/admin/users/{_SAMPLE_BY_TYPE['uuid']}") in ADMIN


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_non_public_route_refuses_anonymous_and_forged_callers(
    shared_client: Client, shared_settings: Settings, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, _forged(shared_settings)):
        response = await shared_client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/unauthenticated"


@pytest.mark.parametrize(("method", "path"), ADMIN)
async def test_admin_routes_refuse_non_staff_and_staff_without_a_second_factor(
    shared_client: Client, shared_settings: Settings, method: str, path: str
) -> None:
    user_id = new_id()
    callers = [auth(shared_settings, user_id, role, mfa=True) for role in NON_STAFF]
    callers.append(auth(shared_settings, user_id, *NON_STAFF, mfa=True))
    callers.append(auth(shared_settings, user_id, Role.ADMIN, mfa=False))
    for headers in callers:
        response = await shared_client.request(method, path, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"] == "/problems/forbidden"


# --- explicit cross-user cases for the profile routes --------------------------------------------

THAMEL = {"label": "Home", "line": "Thamel Marg 12, Kathmandu", "lat": 27.7154, "lng": 85.3123}


@pytest.mark.parametrize(
    ("role", "mfa", "status"),
    [
        (Role.CUSTOMER, True, 403),
        (Role.MERCHANT, True, 403),
        (Role.COURIER, True, 403),
        (Role.PROVIDER, True, 403),
        (Role.SUPPORT, False, 403),
        (Role.ADMIN, False, 403),
        (Role.SUPPORT, True, 200),
        (Role.ADMIN, True, 200),
    ],
)
async def test_who_may_read_another_users_profile(
    client: Client, conn: Any, settings: Settings, role: Role, mfa: bool, status: int
) -> None:
    target = await insert_user(conn, phone="+9779812345678")
    caller = await insert_user(conn, role)
    response = await client.get(f"/v1/admin/users/{target}", headers=auth(settings, caller, role, mfa=mfa))
    assert response.status_code == status, response.text


async def test_a_customer_cannot_touch_another_customers_addresses(
    client: Client, conn: Any, settings: Settings
) -> None:
    owner, other = await insert_user(conn), await insert_user(conn)
    created = await client.post("/v1/me/addresses", json=THAMEL, headers=auth(settings, owner))
    url = f"/v1/me/addresses/{created.json()['id']}"
    other_headers = auth(settings, other)
    attempts = [
        ("GET", url, None),
        ("PATCH", url, {"line": "Taken over"}),
        ("DELETE", url, None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=other_headers)
        assert response.status_code == 404, (method, response.text)
    row = await (await conn.execute("SELECT line FROM addresses WHERE user_id = %s", (owner,))).fetchone()
    assert row["line"] == THAMEL["line"]


async def test_me_routes_only_ever_act_on_the_callers_own_profile(
    client: Client, conn: Any, settings: Settings
) -> None:
    """There is no user id in /v1/me to tamper with: a write lands on the token's subject only."""
    owner, other = (
        await insert_user(conn, display_name="Owner"),
        await insert_user(conn, display_name="Other"),
    )
    response = await client.patch("/v1/me", json={"display_name": "Changed"}, headers=auth(settings, other))
    assert response.status_code == 200
    assert response.json()["id"] == str(other)
    names = await (
        await conn.execute("SELECT id, display_name FROM users WHERE id IN (%s, %s)", (owner, other))
    ).fetchall()
    assert {row["id"]: row["display_name"] for row in names} == {owner: "Owner", other: "Changed"}
    unknown = await client.patch("/v1/me", json={"id": str(owner)}, headers=auth(settings, other))
    assert unknown.status_code == 400
