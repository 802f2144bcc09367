"""Short-lived JWT access tokens (PyJWT), signed HS256 with rotating keys.

The first configured key signs; every configured key verifies, picked by the
``kid`` header, so a new key can be introduced before the old one retires.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cachetools import TLRUCache

from api.errors import Unauthenticated
from api.security.principal import Principal, Role
from nearx.settings import Settings

ALGORITHM = "HS256"
VERIFIED_TOKENS = 10_000
"""How many verified access tokens a codec remembers (each until its own ``exp``)."""


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: float


class TokenCodec:
    """Issues and verifies access tokens for one settings object.

    A token's validity depends only on its bytes, the configured keys, issuer and audience
    (fixed for a codec) and the clock, so a verified token is remembered until its ``exp``:
    clients send the same token on every request, and decoding it again each time was a
    visible share of a short request. Revocation is not the token's business: the
    authentication middleware checks the session on every request. Not thread-safe: the
    event loop is the one caller.
    """

    def __init__(self, settings: Settings) -> None:
        keys = settings.signing_keys
        self._signing_key = keys[0]
        self._verify_keys = {key.kid: key.secret for key in keys}
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_s)
        self._verified: TLRUCache[str, _Verified] = TLRUCache(
            maxsize=VERIFIED_TOKENS, ttu=lambda _token, verified, _now: verified.expires_at, timer=time.time
        )

    def issue(self, principal: Principal, *, now: datetime) -> str:
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(principal.user_id),
            "sid": str(principal.session_id),
            "roles": sorted(principal.roles),
            "mfa": principal.mfa,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims, self._signing_key.secret, algorithm=ALGORITHM, headers={"kid": self._signing_key.kid}
        )

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise :class:`Unauthenticated` otherwise."""
        verified = self._verified.get(token)
        if verified is not None:
            return verified.principal
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            secret = self._verify_keys.get(str(kid))
            if secret is None:
                raise Unauthenticated("access token was signed with an unknown key")
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "sid", "aud", "iss"]},
            )
            principal = Principal(
                user_id=uuid.UUID(claims["sub"]),
                roles=frozenset(Role(role) for role in claims.get("roles", [])),
                session_id=uuid.UUID(claims["sid"]),
                mfa=bool(claims.get("mfa", False)),
            )
            self._verified[token] = _Verified(principal, float(claims["exp"]))
            return principal
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("access token has expired") from exc
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated("access token is not valid") from exc
