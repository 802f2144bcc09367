"""How identity secrets are stored: random tokens, their digests, and encryption at rest.

* Refresh tokens and challenge tickets are 256-bit random values; a plain
  SHA-256 digest is enough to store them (nobody can brute-force 2**256).
* One-time codes (10**6 values) and recovery codes are low-entropy, so they are
  keyed with the server pepper (HMAC-SHA256): a stolen table alone does not let
  anyone test guesses offline. A slow hash without a secret would not help here.
* TOTP secrets must be read back, so they are encrypted (Fernet) under a key
  derived from the pepper with HKDF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def new_token() -> str:
    """A URL-safe random token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(pepper: str, purpose: str, *parts: str) -> str:
    """HMAC-SHA256 of ``parts`` under the pepper, separated per ``purpose`` so digests never cross uses."""
    message = "\x1f".join((purpose, *parts)).encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def secret_box(pepper: str) -> Fernet:
    """The Fernet key for secrets at rest; rotating the pepper needs a re-encryption job."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"nearx/totp-secret/v1").derive(
        pepper.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))
