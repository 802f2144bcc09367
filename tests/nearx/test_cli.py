"""The `nearx` command: every command documents itself, and the database commands work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from nearx.cli import app
from nearx.postgres import drop_database, ensure_database, with_database
from nearx.settings import get_settings

runner = CliRunner()


def _command_paths(group: typer.Typer) -> list[list[str]]:
    """Every command path in the app, e.g. ``["db", "migrate"]``."""
    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(get_command(group), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(app), ids=lambda p: " ".join(p) or "nearx")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture
def configured(pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the CLI's settings at an empty database of this test's own."""
    name = f"nearx_cli_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name)
    url = with_database(pg_admin_url, name)
    monkeypatch.setenv("NEARX_DATABASE_URL", url)
    monkeypatch.setenv("NEARX_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    drop_database(pg_admin_url, name)


def test_db_migrate_then_status(configured: str) -> None:
    pending = runner.invoke(app, ["db", "status"])
    assert pending.exit_code == 0, pending.output
    assert "pending" in pending.output

    first = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert "0001_kernel" in first.output

    second = runner.invoke(app, ["db", "migrate"])
    assert second.output.strip() == "applied 0 migration(s)"

    done = runner.invoke(app, ["db", "status"], terminal_width=200)
    assert "pending" not in done.output
