"""Identity test helpers: tight rate limits, reading codes from the sandbox outbox, signing in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.identity.destinations import infer_channel, normalise
from api.domains.notifications.sandbox import read_messages
from nearx.settings import Settings, load_settings

Client = AsyncTestClient[Litestar]

DESTINATION_LIMIT = 3
IP_LIMIT = 6


def identity_settings(tmp_path: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "NEARX_HOME": str(tmp_path / "nearx"),
            "NEARX_DB_POOL_MAX_SIZE": "20",
            "NEARX_OTP_REQUESTS_PER_DESTINATION_PER_HOUR": str(DESTINATION_LIMIT),
            "NEARX_OTP_REQUESTS_PER_IP_PER_HOUR": str(IP_LIMIT),
            **extra,
        }
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return identity_settings(tmp_path)


def last_code(settings: Settings, destination: str) -> str:
    canonical = normalise(infer_channel(destination), destination)
    messages = read_messages(settings.sandbox_outbox_path, limit=1, destination=canonical)
    assert messages, f"no sandbox message for {destination}"
    return str(messages[0].params["code"])


async def request_code(client: Client, destination: str) -> None:
    channel = "email" if "@" in destination else "sms"
    response = await client.post(
        "/v1/auth/otp/request", json={"channel": channel, "destination": destination}
    )
    assert response.status_code == 202, response.text


async def sign_in(client: Client, settings: Settings, destination: str) -> dict[str, Any]:
    """Request and redeem a code; returns the verify response body."""
    await request_code(client, destination)
    response = await client.post(
        "/v1/auth/otp/verify", json={"destination": destination, "code": last_code(settings, destination)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def count(conn: Any, table: str) -> int:
    row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
    return int(row["n"])
