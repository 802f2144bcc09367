from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from api.errors import Unauthenticated
from api.security.principal import Principal, Role
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings, load_settings


def _settings(tmp_path: Path, keys: str) -> Settings:
    return load_settings({"NEARX_HOME": str(tmp_path), "NEARX_JWT_KEYS": keys})


def _principal() -> Principal:
    return Principal(user_id=new_id(), roles=frozenset({Role.CUSTOMER}), session_id=new_id())


def test_round_trip_keeps_identity_roles_and_factor(tmp_path: Path) -> None:
    codec = TokenCodec(_settings(tmp_path, "k1:one-one-one-one-one-one-one-one-one-one-"))
    principal = Principal(user_id=new_id(), roles=frozenset({Role.ADMIN}), session_id=new_id(), mfa=True)
    assert codec.verify(codec.issue(principal, now=utc_now())) == principal


def test_expired_token_is_refused(tmp_path: Path) -> None:
    codec = TokenCodec(_settings(tmp_path, "k1:one-one-one-one-one-one-one-one-one-one-"))
    token = codec.issue(_principal(), now=utc_now() - codec.ttl - timedelta(seconds=5))
    with pytest.raises(Unauthenticated, match="expired"):
        codec.verify(token)


def test_forged_and_unknown_key_tokens_are_refused(tmp_path: Path) -> None:
    codec = TokenCodec(_settings(tmp_path, "k1:one-one-one-one-one-one-one-one-one-one-"))
    good = codec.issue(_principal(), now=utc_now())
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    with pytest.raises(Unauthenticated):
        codec.verify(tampered)
    alien = jwt.encode({"sub": "x"}, "other-" * 8, algorithm="HS256", headers={"kid": "k9"})
    with pytest.raises(Unauthenticated, match="unknown key"):
        codec.verify(alien)
    unsigned = jwt.encode({"sub": "x"}, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated):
        codec.verify(unsigned)


def test_rotation_new_key_signs_old_key_still_verifies(tmp_path: Path) -> None:
    old = TokenCodec(_settings(tmp_path, "k1:one-one-one-one-one-one-one-one-one-one-"))
    rotated = TokenCodec(
        _settings(
            tmp_path,
            "k2:two-two-two-two-two-two-two-two-two-two-,k1:one-one-one-one-one-one-one-one-one-one-",
        )
    )
    legacy_token = old.issue(_principal(), now=utc_now())
    assert rotated.verify(legacy_token).roles == frozenset({Role.CUSTOMER})
    assert jwt.get_unverified_header(rotated.issue(_principal(), now=utc_now()))["kid"] == "k2"
    retired = TokenCodec(_settings(tmp_path, "k2:two-two-two-two-two-two-two-two-two-two-"))
    with pytest.raises(Unauthenticated):
        retired.verify(legacy_token)
