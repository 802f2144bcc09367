"""OpenID Connect sign-in end to end against a local fake provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from api.domains.identity.oidc import parse_providers
from api.security.tokens import TokenCodec
from nearx.settings import Settings, SettingsError
from tests.api.identity.conftest import Client, count, identity_settings
from tests.api.identity.fake_oidc import CLIENT_ID, REDIRECT_URI, FakeProvider

STARTS_LIMIT = 10


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def settings(tmp_path: Path, fake: FakeProvider) -> Settings:
    providers = {"fake": fake.provider_config(), "fake-static": fake.provider_config(discovery=False)}
    return identity_settings(
        tmp_path,
        NEARX_OIDC_PROVIDERS=json.dumps(providers),
        NEARX_OIDC_STARTS_PER_IP_PER_HOUR=str(STARTS_LIMIT),
    )


async def _authorize(client: Client, provider: str = "fake") -> tuple[str, str, dict[str, str]]:
    """Start the flow and let the fake provider sign the user in: (code, state, query sent)."""
    started = await client.post(f"/v1/auth/oidc/{provider}/authorize")
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    sent = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    async with httpx.AsyncClient() as browser:
        redirect = await browser.get(url)
    assert redirect.status_code == 302
    back = {k: v[0] for k, v in parse_qs(urlparse(redirect.headers["location"]).query).items()}
    assert back["state"] == started.json()["state"]
    return back["code"], back["state"], sent


async def _callback(client: Client, code: str, state: str, provider: str = "fake") -> Any:
    return await client.post(f"/v1/auth/oidc/{provider}/callback", json={"state": state, "code": code})


@pytest.mark.parametrize("provider", ["fake", "fake-static"])
async def test_sign_in_creates_and_then_reuses_a_linked_user(
    client: Client, settings: Settings, conn: Any, fake: FakeProvider, provider: str
) -> None:
    code, state, sent = await _authorize(client, provider)
    assert sent["client_id"] == CLIENT_ID
    assert sent["redirect_uri"] == REDIRECT_URI
    assert sent["code_challenge_method"] == "S256"
    assert "openid" in sent["scope"].split()
    first = await _callback(client, code, state, provider)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "signed_in"
    user_id = TokenCodec(settings).verify(first.json()["access_token"]).user_id
    # the verifier went to the token endpoint, never to the browser
    assert fake.token_requests[-1]["code_verifier"] not in json.dumps(sent)

    code, state, _ = await _authorize(client, provider)
    second = await _callback(client, code, state, provider)
    assert TokenCodec(settings).verify(second.json()["access_token"]).user_id == user_id
    link = await (await conn.execute("SELECT provider, subject, user_id FROM oidc_identities")).fetchone()
    assert link == {"provider": provider, "subject": "fake-subject-1", "user_id": user_id}
    user = await (await conn.execute("SELECT email FROM users")).fetchone()
    assert user["email"] == "ana@example.com"


async def test_an_existing_email_is_never_taken_over(client: Client, settings: Settings, conn: Any) -> None:
    from tests.api.identity.conftest import sign_in

    owner = await sign_in(client, settings, "ana@example.com")
    code, state, _ = await _authorize(client)
    response = await _callback(client, code, state)
    assert response.status_code == 200
    codec = TokenCodec(settings)
    assert (
        codec.verify(response.json()["access_token"]).user_id != codec.verify(owner["access_token"]).user_id
    )
    assert await count(conn, "users") == 2


WHY = {
    "forged": "InvalidSignatureError",
    "expired": "ExpiredSignatureError",
    "wrong_nonce": "nonce does not match",
    "wrong_audience": "InvalidAudienceError",
    "wrong_issuer": "InvalidIssuerError",
    "unknown_kid": "PyJWKClientError",
    "hs256": "InvalidAlgorithmError",
}


async def test_bad_id_tokens_are_refused(client: Client, conn: Any, fake: FakeProvider) -> None:
    for tamper, why in WHY.items():
        fake.tamper = tamper
        code, state, _ = await _authorize(client)
        response = await _callback(client, code, state)
        assert response.status_code == 401, tamper
        assert response.headers["content-type"].startswith("application/problem+json")
        failure = await (
            await conn.execute("SELECT event, detail FROM security_events ORDER BY occurred_at DESC, id DESC")
        ).fetchone()
        assert failure["event"] == "oidc.failed"
        assert why in failure["detail"]["reason"], tamper
    assert await count(conn, "users") == 0
    assert await count(conn, "auth_sessions") == 0
    assert await count(conn, "security_events") == len(WHY)
    # the same provider still signs a well-behaved user in
    fake.tamper = "none"
    code, state, _ = await _authorize(client)
    assert (await _callback(client, code, state)).status_code == 200


async def test_state_is_single_use_and_expires(client: Client, conn: Any) -> None:
    code, state, _ = await _authorize(client)
    assert (await _callback(client, code, state)).status_code == 200
    assert (await _callback(client, code, state)).status_code == 401

    code, state, _ = await _authorize(client)
    await conn.execute(
        "UPDATE oidc_flows SET expires_at = now() - interval '1 second' WHERE consumed_at IS NULL"
    )
    assert (await _callback(client, code, state)).status_code == 401


async def test_state_of_another_provider_or_unknown_state_is_refused(client: Client, conn: Any) -> None:
    code, state, _ = await _authorize(client, "fake")
    assert (await _callback(client, code, state, "fake-static")).status_code == 401
    assert (await _callback(client, code, "x" * 43)).status_code == 401
    assert await count(conn, "security_events") == 0  # nothing was at stake, nothing is written
    # the state is still good for its own provider
    assert (await _callback(client, code, state, "fake")).status_code == 200


async def test_starts_are_limited_per_client_address(client: Client, conn: Any) -> None:
    for _ in range(STARTS_LIMIT):
        assert (await client.post("/v1/auth/oidc/fake/authorize")).status_code == 200
    limited = await client.post("/v1/auth/oidc/fake/authorize")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert await count(conn, "oidc_flows") == STARTS_LIMIT


async def test_a_code_the_provider_rejects_is_refused(client: Client, conn: Any) -> None:
    _, state, _ = await _authorize(client)
    response = await _callback(client, "made-up-code", state)
    assert response.status_code == 401
    assert await count(conn, "users") == 0


async def test_unknown_provider_is_404(client: Client, conn: Any) -> None:
    response = await client.post("/v1/auth/oidc/nope/authorize")
    assert response.status_code == 404
    assert await count(conn, "oidc_flows") == 0


async def test_callback_input_is_validated(client: Client, conn: Any) -> None:
    response = await client.post("/v1/auth/oidc/fake/callback", json={"state": "short", "code": "c", "x": 1})
    assert response.status_code == 400
    assert await count(conn, "security_events") == 0


def test_provider_configuration_is_checked() -> None:
    with pytest.raises(SettingsError):
        parse_providers('{"p": {"issuer": "https://i", "client_id": "c", "redirect_uri": "https://r"}}')
    with pytest.raises(SettingsError):
        parse_providers("{not json")
    assert parse_providers("") == {}
