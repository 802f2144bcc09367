"""A tiny OpenID Connect provider on 127.0.0.1 for end-to-end tests of the OIDC flow.

It serves discovery, JWKS, an authorize endpoint that signs in ``user`` at
once and redirects with a code, and a token endpoint that checks the client
secret, the redirect URI and the PKCE verifier before returning an RS256 ID
token. ``tamper`` makes the next ID token bad in one chosen way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

Tamper = Literal[
    "none", "forged", "expired", "wrong_nonce", "wrong_audience", "wrong_issuer", "unknown_kid", "hs256"
]
KID = "fake-key-1"
CLIENT_ID = "nearx-test-client"
CLIENT_SECRET = "fake-client-secret-long-enough-for-hs256"
REDIRECT_URI = "https://app.nearx.test/oidc/callback"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    used: bool = False


@dataclass
class FakeProvider:
    user: dict[str, Any] = field(
        default_factory=lambda: {"sub": "fake-subject-1", "email": "ana@example.com", "email_verified": True}
    )
    tamper: Tamper = "none"
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def provider_config(self, *, discovery: bool = True) -> dict[str, Any]:
        base: dict[str, Any] = {
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
        }
        if discovery:
            base["discovery_url"] = f"{self.issuer}/.well-known/openid-configuration"
        else:
            base.update(
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
            )
        return base

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=KID, use="sig", alg="RS256")
        return {"keys": [public]}

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {
            **self.user,
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
        }
        key: Any = self.key
        headers = {"kid": KID}
        if self.tamper == "forged":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif self.tamper == "expired":
            claims.update(iat=now - 3600, exp=now - 1800)
        elif self.tamper == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.tamper == "wrong_audience":
            claims["aud"] = "someone-else"
        elif self.tamper == "wrong_issuer":
            claims["iss"] = "https://evil.example"
        elif self.tamper == "unknown_kid":
            headers = {"kid": "rotated-away"}
        elif self.tamper == "hs256":  # a symmetric token keyed with the public key: alg confusion
            return jwt.encode(claims, CLIENT_SECRET, algorithm="HS256", headers=headers)
        return jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def authorize(self, query: dict[str, str]) -> str:
        """Sign ``user`` in and return the redirect location."""
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            query["client_id"], query["redirect_uri"], query["nonce"], query["code_challenge"]
        )
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client"}
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.code_challenge or form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "PKCE or redirect_uri mismatch"}
        grant.used = True
        return 200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "id_token": self.id_token(grant),
        }

    def start(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": provider.issuer,
                            "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token",
                            "jwks_uri": f"{provider.issuer}/jwks",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        },
                    )
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(query))
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if urlparse(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = provider.token(form, self.headers.get("Authorization"))
                self._json(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
