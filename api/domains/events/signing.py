"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"`` with a per-subscription secret.

The timestamp inside the signed text lets a receiver refuse replays older than
a tolerance. Secrets are derived from the server pepper and the subscription
id (HMAC), so none is stored: rotating the pepper rotates every secret.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

SIGNATURE_HEADER = "X-Nearx-Signature"
DEFAULT_TOLERANCE_S = 300


def subscription_secret(pepper: str, subscription_id: uuid.UUID) -> str:
    return hmac.new(pepper.encode(), f"webhook:{subscription_id}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value: ``t=<unix seconds>,v1=<hex hmac>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> bool:
    """What a merchant's server does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), f"t={timestamp},v1={parts.get('v1', '')}")
