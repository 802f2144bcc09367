from __future__ import annotations

from pathlib import Path

import pytest

from nearx.settings import SettingsError, load_settings

NEW, OLD = "n" * 40, "o" * 40


def test_defaults_work_on_a_fresh_machine(tmp_path: Path) -> None:
    settings = load_settings({"NEARX_HOME": str(tmp_path)})
    assert settings.mode == "sandbox"
    assert settings.database_url is None
    assert settings.embedded_pg_dir == tmp_path / "pg"
    assert settings.h3_resolutions == (7, 9)


def test_values_are_converted_from_strings(tmp_path: Path) -> None:
    settings = load_settings(
        {"NEARX_HOME": str(tmp_path), "NEARX_PORT": "9001", "NEARX_H3_RESOLUTIONS": "6,8"}
    )
    assert settings.port == 9001
    assert settings.h3_resolutions == (6, 8)


def test_unrelated_variables_are_ignored(tmp_path: Path) -> None:
    settings = load_settings(
        {"NEARX_HOME": str(tmp_path), "NEARX_TEST_REDIS_URL": "redis://x", "PATH": "/bin"}
    )
    assert settings.redis_url is None


@pytest.mark.parametrize(
    "environ",
    [
        {"NEARX_PORT": "eighty"},
        {"NEARX_MODE": "staging"},
        {"NEARX_DB_POOL_MIN_SIZE": "5", "NEARX_DB_POOL_MAX_SIZE": "2"},
    ],
)
def test_malformed_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ)


def test_production_refuses_to_start_without_real_secrets(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NEARX_JWT_KEYS"):
        load_settings({"NEARX_HOME": str(tmp_path), "NEARX_MODE": "production"})


def test_jwt_keys_rotate_by_kid(tmp_path: Path) -> None:
    settings = load_settings({"NEARX_HOME": str(tmp_path), "NEARX_JWT_KEYS": f"k2:{NEW},k1:{OLD}"})
    assert [key.kid for key in settings.signing_keys] == ["k2", "k1"]
    with pytest.raises(SettingsError):
        _ = load_settings({"NEARX_HOME": str(tmp_path), "NEARX_JWT_KEYS": "no-colon"}).signing_keys


def test_short_jwt_secrets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="32 characters"):
        _ = load_settings({"NEARX_HOME": str(tmp_path), "NEARX_JWT_KEYS": "k1:short"}).signing_keys


def test_sandbox_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings({"NEARX_HOME": str(tmp_path)})
    second = load_settings({"NEARX_HOME": str(tmp_path)})
    assert first.pepper == second.pepper
    assert len(first.pepper) >= 32
    assert first.signing_keys[0].secret != first.pepper
