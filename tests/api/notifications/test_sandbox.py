"""The sandbox outbox: what it records, who may use it, and the CLI that reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.domains.notifications.sandbox import SandboxSender, read_messages
from api.domains.notifications.sender import MessagingNotConfigured, build_sender
from api.domains.notifications.templates import UnknownTemplate, render
from nearx import cli
from nearx.settings import Settings, get_settings, load_settings

PRODUCTION = {
    "NEARX_MODE": "production",
    "NEARX_JWT_KEYS": "k1:" + "s" * 40,
    "NEARX_SECRET_PEPPER": "p" * 40,
    "NEARX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
}


def _sandbox(tmp_path: Path) -> Settings:
    return load_settings({"NEARX_HOME": str(tmp_path)})


async def test_messages_are_appended_as_json_lines_newest_first(tmp_path: Path) -> None:
    settings = _sandbox(tmp_path)
    sender = build_sender(settings)
    for code, destination in (
        ("111111", "+9779801234567"),
        ("222222", "ana@example.com"),
        ("333333", "+9779801234567"),
    ):
        channel = "email" if "@" in destination else "sms"
        await sender.send(
            channel=channel, destination=destination, template="otp", params={"code": code, "minutes": "5"}
        )
    lines = settings.sandbox_outbox_path.read_text().splitlines()
    assert len(lines) == 3
    latest = read_messages(settings.sandbox_outbox_path, limit=1, destination="+9779801234567")
    assert [m.params["code"] for m in latest] == ["333333"]
    assert "333333 is your NEARX sign-in code" in latest[0].body
    email = read_messages(settings.sandbox_outbox_path, destination="ana@example.com")[0]
    assert email.subject == "Your NEARX sign-in code"
    assert [m.params["code"] for m in read_messages(settings.sandbox_outbox_path)] == [
        "333333",
        "222222",
        "111111",
    ]


def test_production_mode_refuses_the_sandbox(tmp_path: Path) -> None:
    production = load_settings({**PRODUCTION, "NEARX_HOME": str(tmp_path)})
    with pytest.raises(MessagingNotConfigured, match="real SMS/email provider"):
        build_sender(production)
    with pytest.raises(RuntimeError, match="only available in sandbox mode"):
        SandboxSender(production)
    assert not production.sandbox_outbox_path.exists()


def test_templates_render_per_channel() -> None:
    assert render("otp", "sms", {"code": "123456", "minutes": "5"}).subject is None
    with pytest.raises(UnknownTemplate):
        render("otp", "push", {"code": "1", "minutes": "1"})
    with pytest.raises(KeyError):
        render("otp", "sms", {"code": "123456"})


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("NEARX_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_cli_lists_the_latest_messages(runner: CliRunner, tmp_path: Path) -> None:
    sender = build_sender(_sandbox(tmp_path))
    await sender.send(
        channel="sms", destination="+9779801234567", template="otp", params={"code": "424242", "minutes": "5"}
    )
    await sender.send(
        channel="email",
        destination="ana@example.com",
        template="otp",
        params={"code": "737373", "minutes": "5"},
    )
    result = runner.invoke(cli.app, ["sandbox", "messages", "--destination", "+977 980-1234567"])
    assert result.exit_code == 0, result.output
    assert "424242" in result.output
    assert "737373" not in result.output
    both = runner.invoke(cli.app, ["sandbox", "messages", "--limit", "1"])
    assert "737373" in both.output
    assert "424242" not in both.output
    bad = runner.invoke(cli.app, ["sandbox", "messages", "--destination", "12345"])
    assert bad.exit_code == 2


def test_cli_serve_fails_at_start_up_in_production_without_a_message_provider(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in PRODUCTION.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    result = runner.invoke(cli.app, ["serve"])
    assert result.exit_code != 0
    assert isinstance(result.exception, MessagingNotConfigured)
