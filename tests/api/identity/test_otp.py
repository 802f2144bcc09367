"""Sign-in by one-time code: happy path, expiry, single use, lockout, rate limits, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

from api.domains.notifications.sandbox import read_messages
from api.security.principal import Role
from api.security.tokens import TokenCodec
from nearx.settings import Settings
from tests.api.identity.conftest import (
    DESTINATION_LIMIT,
    IP_LIMIT,
    Client,
    count,
    last_code,
    request_code,
    sign_in,
)

PHONE = "+9779801234567"


async def test_first_sign_in_creates_a_customer_and_returns_tokens(
    client: Client, settings: Settings, conn: Any
) -> None:
    body = await sign_in(client, settings, PHONE)
    assert body["status"] == "signed_in"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_s
    principal = TokenCodec(settings).verify(body["access_token"])
    assert principal.roles == frozenset({Role.CUSTOMER})
    assert principal.mfa is False
    user = await (await conn.execute("SELECT id, phone FROM users")).fetchone()
    assert user == {"id": principal.user_id, "phone": PHONE}
    # the code and the refresh token are stored only as digests
    stored = await (await conn.execute("SELECT code_hash FROM otp_challenges")).fetchone()
    assert last_code(settings, PHONE) not in stored["code_hash"]
    assert len(stored["code_hash"]) == 64
    token_rows = await (await conn.execute("SELECT token_hash FROM refresh_tokens")).fetchall()
    assert [row["token_hash"] for row in token_rows] != [body["refresh_token"]]
    events = await (
        await conn.execute("SELECT event FROM security_events ORDER BY occurred_at, id")
    ).fetchall()
    assert [e["event"] for e in events] == ["otp.requested", "user.registered", "session.signed_in"]
    outbox = await (await conn.execute("SELECT event_type FROM outbox")).fetchall()
    assert [row["event_type"] for row in outbox] == ["user.registered"]


async def test_second_sign_in_reuses_the_account_and_email_is_case_insensitive(
    client: Client, settings: Settings, conn: Any
) -> None:
    first = await sign_in(client, settings, "Ana@Example.com")
    second = await sign_in(client, settings, "ana@example.COM")
    codec = TokenCodec(settings)
    assert codec.verify(first["access_token"]).user_id == codec.verify(second["access_token"]).user_id
    assert await count(conn, "users") == 1
    user = await (await conn.execute("SELECT email FROM users")).fetchone()
    assert user["email"] == "ana@example.com"


async def test_request_answers_the_same_for_known_and_unknown_destinations(
    client: Client, settings: Settings
) -> None:
    await sign_in(client, settings, PHONE)
    known = await client.post("/v1/auth/otp/request", json={"channel": "sms", "destination": PHONE})
    unknown = await client.post(
        "/v1/auth/otp/request", json={"channel": "sms", "destination": "+919876543210"}
    )
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json() == {"expires_in": settings.otp_ttl_s, "status": "sent"}


async def test_expired_code_is_refused(client: Client, settings: Settings, conn: Any) -> None:
    await request_code(client, PHONE)
    await conn.execute("UPDATE otp_challenges SET expires_at = now() - interval '1 second'")
    response = await client.post(
        "/v1/auth/otp/verify", json={"destination": PHONE, "code": last_code(settings, PHONE)}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(conn, "users") == 0
    assert await count(conn, "auth_sessions") == 0


async def test_code_is_single_use(client: Client, settings: Settings) -> None:
    await sign_in(client, settings, PHONE)
    again = await client.post(
        "/v1/auth/otp/verify", json={"destination": PHONE, "code": last_code(settings, PHONE)}
    )
    assert again.status_code == 401


async def test_only_the_latest_code_counts(client: Client, settings: Settings) -> None:
    await request_code(client, PHONE)
    older = last_code(settings, PHONE)
    await request_code(client, PHONE)
    newer = last_code(settings, PHONE)
    if older != newer:  # one chance in a million they coincide
        stale = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": older})
        assert stale.status_code == 401
    fresh = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": newer})
    assert fresh.status_code == 200


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_five_wrong_codes_lock_it_and_the_right_code_is_then_refused(
    client: Client, settings: Settings, conn: Any
) -> None:
    await request_code(client, PHONE)
    code = last_code(settings, PHONE)
    for _ in range(settings.otp_max_attempts):
        wrong = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": _wrong(code)})
        assert wrong.status_code == 401
    right = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": code})
    assert right.status_code == 401
    assert "too many wrong codes" in right.json()["detail"]
    assert await count(conn, "auth_sessions") == 0
    challenge = await (await conn.execute("SELECT attempts, consumed_at FROM otp_challenges")).fetchone()
    assert challenge == {"attempts": settings.otp_max_attempts, "consumed_at": None}
    # each failure was committed despite the 401, and the lockout is on record
    events = await (
        await conn.execute(
            "SELECT event, detail FROM security_events WHERE event LIKE 'otp.%%' ORDER BY occurred_at, id"
        )
    ).fetchall()
    names = [e["event"] for e in events]
    assert names.count("otp.failed") == settings.otp_max_attempts
    assert names[-1] == "otp.locked"  # the refused right code spent nothing and wrote nothing


async def test_a_right_code_after_four_wrong_ones_still_works(client: Client, settings: Settings) -> None:
    await request_code(client, PHONE)
    code = last_code(settings, PHONE)
    for _ in range(settings.otp_max_attempts - 1):
        await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": _wrong(code)})
    right = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": code})
    assert right.status_code == 200


async def test_requests_are_limited_per_destination(client: Client, conn: Any) -> None:
    for _ in range(DESTINATION_LIMIT):
        await request_code(client, PHONE)
    limited = await client.post("/v1/auth/otp/request", json={"channel": "sms", "destination": PHONE})
    assert limited.status_code == 429
    assert limited.json()["type"] == "/problems/rate-limited"
    assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert await count(conn, "otp_challenges") == DESTINATION_LIMIT
    # another destination is still served
    await request_code(client, "+919876543210")


async def test_requests_are_limited_per_ip(client: Client, conn: Any) -> None:
    for i in range(IP_LIMIT):
        await request_code(client, f"user{i}@example.com")
    limited = await client.post(
        "/v1/auth/otp/request", json={"channel": "email", "destination": "new@example.com"}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert await count(conn, "otp_challenges") == IP_LIMIT


async def test_the_rate_window_slides(client: Client, conn: Any) -> None:
    for _ in range(DESTINATION_LIMIT):
        await request_code(client, PHONE)
    await conn.execute("UPDATE otp_challenges SET created_at = created_at - interval '61 minutes'")
    await request_code(client, PHONE)


BAD_REQUESTS: list[tuple[dict[str, Any], int]] = [
    ({"channel": "sms", "destination": "9801234567"}, 422),  # not international
    ({"channel": "sms", "destination": "+1234"}, 422),
    ({"channel": "email", "destination": "not-an-email"}, 422),
    ({"channel": "fax", "destination": PHONE}, 400),
    ({"channel": "sms", "destination": 9779801234567}, 400),  # wrong type
    ({"channel": "sms", "destination": PHONE, "extra": 1}, 400),  # unknown field
    ({"channel": "sms"}, 400),
]


async def test_bad_requests_are_problems_and_write_nothing(client: Client, conn: Any) -> None:
    for body, status in BAD_REQUESTS:
        response = await client.post("/v1/auth/otp/request", json=body)
        assert response.status_code == status, body
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(conn, "otp_challenges") == 0
    assert await count(conn, "security_events") == 0


async def test_malformed_json_is_a_400_problem(client: Client, conn: Any) -> None:
    response = await client.post(
        "/v1/auth/otp/verify", content=b'{"destination": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert await count(conn, "security_events") == 0


async def test_malformed_codes_are_refused_before_spending_an_attempt(client: Client, conn: Any) -> None:
    await request_code(client, PHONE)
    for code in ["12345", "abcdef", "1234567", 123456]:
        response = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": code})
        assert response.status_code == 400, code
    row = await (await conn.execute("SELECT attempts FROM otp_challenges")).fetchone()
    assert row["attempts"] == 0


async def test_sign_in_codes_reach_the_sandbox_outbox(client: Client, settings: Settings) -> None:
    await request_code(client, "ana@example.com")
    [message] = read_messages(settings.sandbox_outbox_path, destination="ana@example.com")
    assert message.channel == "email"
    assert message.template == "otp"
    assert message.params["code"] in message.body


async def test_concurrent_guesses_never_exceed_the_attempt_limit(
    client: Client, settings: Settings, conn: Any
) -> None:
    await request_code(client, PHONE)
    code = last_code(settings, PHONE)
    guesses = [_wrong(code)] * 12
    responses = await asyncio.gather(
        *(client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": g}) for g in guesses)
    )
    assert {r.status_code for r in responses} == {401}
    row = await (await conn.execute("SELECT attempts FROM otp_challenges")).fetchone()
    assert row["attempts"] == settings.otp_max_attempts
    right = await client.post("/v1/auth/otp/verify", json={"destination": PHONE, "code": code})
    assert right.status_code == 401


async def test_concurrent_requests_respect_the_rate_limit(client: Client, conn: Any) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/v1/auth/otp/request", json={"channel": "sms", "destination": PHONE})
            for _ in range(DESTINATION_LIMIT + 4)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * DESTINATION_LIMIT + [429] * 4
    assert await count(conn, "otp_challenges") == DESTINATION_LIMIT


async def test_verify_rejects_bad_destinations_without_writing(client: Client, conn: Any) -> None:
    for destination, status in [("9801234567", 422), ("+1234", 422), ("nobody@", 422), ("", 400)]:
        response = await client.post(
            "/v1/auth/otp/verify", json={"destination": destination, "code": "123456"}
        )
        assert response.status_code == status, destination
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(conn, "security_events") == 0
    assert await count(conn, "users") == 0
