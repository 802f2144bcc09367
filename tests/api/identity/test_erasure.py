"""Account deletion also erases what identity knows about the person (GDPR Art. 17)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from nearx.settings import Settings
from tests.api.identity.conftest import bearer, request_code, sign_in

PHONE = "+9779841000001"


async def test_deleting_the_account_erases_identity_pii_but_keeps_the_audit_events(
    client: AsyncTestClient[Litestar], conn: Any, settings: Settings
) -> None:
    signed_in = await sign_in(client, settings, PHONE)
    await request_code(client, PHONE)  # an unredeemed code for the same destination
    headers = bearer(signed_in["access_token"])
    user = await (await conn.execute("SELECT id FROM users WHERE phone = %s", (PHONE,))).fetchone()
    events_before = await (
        await conn.execute("SELECT count(*) AS n FROM security_events WHERE user_id = %s", (user["id"],))
    ).fetchone()
    assert events_before["n"] > 0

    assert (await client.delete("/v1/me", headers=headers)).status_code == 204

    codes = await (await conn.execute("SELECT count(*) AS n FROM otp_challenges")).fetchone()
    assert codes == {"n": 0}
    sessions = await (
        await conn.execute("SELECT ip, user_agent FROM auth_sessions WHERE user_id = %s", (user["id"],))
    ).fetchall()
    assert sessions
    assert all(row == {"ip": None, "user_agent": None} for row in sessions)
    audit = await (
        await conn.execute(
            "SELECT count(*) AS n, count(ip) AS with_ip FROM security_events WHERE user_id = %s",
            (user["id"],),
        )
    ).fetchone()
    assert audit["n"] >= events_before["n"]  # events stay as evidence
    assert audit["with_ip"] == 0  # but no longer say where the person was
