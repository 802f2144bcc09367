"""TOTP enrolment and sign-in, recovery codes, privileged roles, and role administration."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pyotp

from api.security.principal import Principal, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.settings import Settings
from tests.api.identity.conftest import Client, bearer, count, sign_in

ADMIN_PHONE = "+9779801111111"
USER_PHONE = "+9779802222222"


async def _user_id(conn: Any, phone: str) -> uuid.UUID:
    row = await (await conn.execute("SELECT id FROM users WHERE phone = %s", (phone,))).fetchone()
    return uuid.UUID(str(row["id"]))


async def _enrolled(client: Client, settings: Settings, phone: str) -> tuple[pyotp.TOTP, dict[str, Any]]:
    """Sign in, enrol and confirm TOTP; returns the authenticator and the confirmation body."""
    body = await sign_in(client, settings, phone)
    enrol = await client.post("/v1/auth/totp/enrol", headers=bearer(body["access_token"]))
    assert enrol.status_code == 200, enrol.text
    authenticator = pyotp.TOTP(enrol.json()["secret"])
    assert enrol.json()["provisioning_uri"].startswith("otpauth://totp/NEARX:")
    confirm = await client.post(
        "/v1/auth/totp/confirm", json={"code": authenticator.now()}, headers=bearer(body["access_token"])
    )
    assert confirm.status_code == 200, confirm.text
    return authenticator, confirm.json()


async def _start_mfa_sign_in(client: Client, settings: Settings, phone: str) -> str:
    body = await sign_in(client, settings, phone)
    assert body["status"] == "mfa_required"
    assert "access_token" not in body
    return str(body["mfa_token"])


def _next_code(authenticator: pyotp.TOTP) -> str:
    """The next step's code (within the drift window): the current one was spent confirming."""
    return authenticator.at(utc_now() + timedelta(seconds=30))


async def test_enrolled_user_needs_totp_at_sign_in(client: Client, settings: Settings, conn: Any) -> None:
    authenticator, confirmed = await _enrolled(client, settings, USER_PHONE)
    assert len(confirmed["recovery_codes"]) == 10
    secret_row = await (await conn.execute("SELECT secret_encrypted FROM totp_factors")).fetchone()
    assert authenticator.secret not in secret_row["secret_encrypted"]

    mfa_token = await _start_mfa_sign_in(client, settings, USER_PHONE)
    done = await client.post(
        "/v1/auth/totp/verify", json={"mfa_token": mfa_token, "code": _next_code(authenticator)}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "signed_in"
    assert TokenCodec(settings).verify(done.json()["access_token"]).mfa is True
    events = [r["event"] for r in await (await conn.execute("SELECT event FROM security_events")).fetchall()]
    for expected in ("totp.enrolled", "totp.confirmed", "mfa.required"):
        assert events.count(expected) == 1
    assert events.count("session.signed_in") == 2  # the enrolling session, then the TOTP sign-in
    # the ticket is single-use
    again = await client.post(
        "/v1/auth/totp/verify", json={"mfa_token": mfa_token, "code": _next_code(authenticator)}
    )
    assert again.status_code == 401


async def test_a_totp_code_cannot_be_replayed(client: Client, settings: Settings) -> None:
    authenticator, _ = await _enrolled(client, settings, USER_PHONE)
    mfa_token = await _start_mfa_sign_in(client, settings, USER_PHONE)
    spent = authenticator.now()  # used by the confirmation a moment ago (same 30 s step, almost surely)
    replay = await client.post("/v1/auth/totp/verify", json={"mfa_token": mfa_token, "code": spent})
    if replay.status_code == 200:  # the step rolled over between confirm and now: nothing to prove
        return
    assert replay.status_code == 401


async def test_recovery_codes_work_once(client: Client, settings: Settings, conn: Any) -> None:
    _, confirmed = await _enrolled(client, settings, USER_PHONE)
    recovery = confirmed["recovery_codes"][0]
    first = await client.post(
        "/v1/auth/totp/verify",
        json={"mfa_token": await _start_mfa_sign_in(client, settings, USER_PHONE), "recovery_code": recovery},
    )
    assert first.status_code == 200
    second = await client.post(
        "/v1/auth/totp/verify",
        json={"mfa_token": await _start_mfa_sign_in(client, settings, USER_PHONE), "recovery_code": recovery},
    )
    assert second.status_code == 401
    rows = await (await conn.execute("SELECT code_hash FROM recovery_codes")).fetchall()
    assert all(recovery not in row["code_hash"] for row in rows)
    events = [r["event"] for r in await (await conn.execute("SELECT event FROM security_events")).fetchall()]
    assert events.count("mfa.recovery_used") == 1
    assert events.count("mfa.failed") == 1


async def test_second_factor_locks_after_five_wrong_codes(client: Client, settings: Settings) -> None:
    authenticator, _ = await _enrolled(client, settings, USER_PHONE)
    mfa_token = await _start_mfa_sign_in(client, settings, USER_PHONE)
    right = _next_code(authenticator)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(settings.otp_max_attempts):
        response = await client.post("/v1/auth/totp/verify", json={"mfa_token": mfa_token, "code": wrong})
        assert response.status_code == 401
    locked = await client.post("/v1/auth/totp/verify", json={"mfa_token": mfa_token, "code": right})
    assert locked.status_code == 401


async def test_second_factor_input_must_name_exactly_one_factor(
    client: Client, settings: Settings, conn: Any
) -> None:
    _, confirmed = await _enrolled(client, settings, USER_PHONE)
    mfa_token = await _start_mfa_sign_in(client, settings, USER_PHONE)
    both = await client.post(
        "/v1/auth/totp/verify",
        json={"mfa_token": mfa_token, "code": "123456", "recovery_code": confirmed["recovery_codes"][0]},
    )
    assert both.status_code == 422
    neither = await client.post("/v1/auth/totp/verify", json={"mfa_token": mfa_token})
    assert neither.status_code == 422
    row = await (await conn.execute("SELECT attempts FROM mfa_challenges")).fetchone()
    assert row["attempts"] == 0


async def test_a_wrong_confirmation_code_leaves_the_factor_unconfirmed(
    client: Client, settings: Settings, conn: Any
) -> None:
    body = await sign_in(client, settings, USER_PHONE)
    enrol = await client.post("/v1/auth/totp/enrol", headers=bearer(body["access_token"]))
    right = pyotp.TOTP(enrol.json()["secret"]).now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    response = await client.post(
        "/v1/auth/totp/confirm", json={"code": wrong}, headers=bearer(body["access_token"])
    )
    assert response.status_code == 422
    row = await (await conn.execute("SELECT confirmed_at FROM totp_factors")).fetchone()
    assert row["confirmed_at"] is None
    assert await count(conn, "recovery_codes") == 0
    # once confirmed, enrolling again is refused
    await client.post("/v1/auth/totp/confirm", json={"code": right}, headers=bearer(body["access_token"]))
    again = await client.post("/v1/auth/totp/enrol", headers=bearer(body["access_token"]))
    assert again.status_code == 409


async def test_privileged_user_without_totp_gets_no_privileged_token(
    client: Client, settings: Settings, conn: Any
) -> None:
    await sign_in(client, settings, ADMIN_PHONE)
    admin_id = await _user_id(conn, ADMIN_PHONE)
    await conn.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, 'admin')", (admin_id,))

    body = await sign_in(client, settings, ADMIN_PHONE)
    assert body["status"] == "mfa_enrolment_required"
    principal = TokenCodec(settings).verify(body["access_token"])
    assert Role.ADMIN not in principal.roles
    assert principal.mfa is False
    denied = await client.get(f"/v1/admin/users/{admin_id}/roles", headers=bearer(body["access_token"]))
    assert denied.status_code == 403
    # refreshing does not smuggle the role in either
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert Role.ADMIN not in TokenCodec(settings).verify(refreshed.json()["access_token"]).roles

    # enrolling and confirming upgrades the session
    enrol = await client.post("/v1/auth/totp/enrol", headers=bearer(body["access_token"]))
    code = pyotp.TOTP(enrol.json()["secret"]).now()
    confirm = await client.post(
        "/v1/auth/totp/confirm", json={"code": code}, headers=bearer(body["access_token"])
    )
    upgraded = TokenCodec(settings).verify(confirm.json()["access_token"])
    assert upgraded.mfa is True
    assert Role.ADMIN in upgraded.roles
    allowed = await client.get(
        f"/v1/admin/users/{admin_id}/roles", headers=bearer(confirm.json()["access_token"])
    )
    assert allowed.status_code == 200
    assert set(allowed.json()["roles"]) == {"admin", "customer"}
    # the upgraded session's refresh keeps mfa and the role
    new_refresh = (
        await client.post("/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    ).json()
    assert Role.ADMIN in TokenCodec(settings).verify(new_refresh["access_token"]).roles


async def _admin_token(client: Client, settings: Settings, conn: Any) -> tuple[str, uuid.UUID]:
    await sign_in(client, settings, ADMIN_PHONE)
    admin_id = await _user_id(conn, ADMIN_PHONE)
    await conn.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, 'admin')", (admin_id,))
    _, confirmed = await _enrolled(client, settings, ADMIN_PHONE)
    return confirmed["access_token"], admin_id


async def test_admin_grants_and_revokes_roles_with_an_audit_trail(
    client: Client, settings: Settings, conn: Any
) -> None:
    admin_token, admin_id = await _admin_token(client, settings, conn)
    user = await sign_in(client, settings, USER_PHONE)
    user_id = await _user_id(conn, USER_PHONE)

    granted = await client.post(
        f"/v1/admin/users/{user_id}/roles", json={"role": "courier"}, headers=bearer(admin_token)
    )
    assert granted.status_code == 200
    assert set(granted.json()["roles"]) == {"courier", "customer"}
    again = await client.post(
        f"/v1/admin/users/{user_id}/roles", json={"role": "courier"}, headers=bearer(admin_token)
    )
    assert again.status_code == 200

    # granting support, then revoking it, ends the user's sessions
    await client.post(
        f"/v1/admin/users/{user_id}/roles", json={"role": "support"}, headers=bearer(admin_token)
    )
    revoked = await client.delete(f"/v1/admin/users/{user_id}/roles/support", headers=bearer(admin_token))
    assert revoked.status_code == 200
    assert set(revoked.json()["roles"]) == {"courier", "customer"}
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    ).status_code == 401

    events = await (
        await conn.execute(
            "SELECT event, actor_id, detail FROM security_events WHERE user_id = %s AND event LIKE 'role.%%' "
            "ORDER BY occurred_at, id",
            (user_id,),
        )
    ).fetchall()
    assert [(e["event"], e["detail"]["role"]) for e in events] == [
        ("role.granted", "courier"),
        ("role.granted", "support"),
        ("role.revoked", "support"),
    ]
    assert {e["actor_id"] for e in events} == {admin_id}
    outbox = await (
        await conn.execute("SELECT event_type FROM outbox WHERE event_type LIKE 'user.role%%'")
    ).fetchall()
    assert len(outbox) == 3


async def test_role_admin_input_and_access_rules(client: Client, settings: Settings, conn: Any) -> None:
    admin_token, _ = await _admin_token(client, settings, conn)
    customer = await sign_in(client, settings, USER_PHONE)
    user_id = await _user_id(conn, USER_PHONE)
    before = await count(conn, "security_events")

    unknown_role = await client.post(
        f"/v1/admin/users/{user_id}/roles", json={"role": "superuser"}, headers=bearer(admin_token)
    )
    assert unknown_role.status_code == 400
    missing = await client.post(
        f"/v1/admin/users/{uuid.uuid4()}/roles", json={"role": "courier"}, headers=bearer(admin_token)
    )
    assert missing.status_code == 404
    as_customer = await client.post(
        f"/v1/admin/users/{user_id}/roles", json={"role": "admin"}, headers=bearer(customer["access_token"])
    )
    assert as_customer.status_code == 403
    # an admin token without a second factor is refused too
    no_mfa = TokenCodec(settings).issue(
        Principal(user_id=user_id, roles=frozenset({Role.ADMIN}), session_id=uuid.uuid4(), mfa=False),
        now=utc_now(),
    )
    assert (await client.get(f"/v1/admin/users/{user_id}/roles", headers=bearer(no_mfa))).status_code == 403
    assert await count(conn, "security_events") == before
    rows = await (await conn.execute("SELECT role FROM user_roles WHERE user_id = %s", (user_id,))).fetchall()
    assert [r["role"] for r in rows] == ["customer"]
