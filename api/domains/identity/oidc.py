"""OpenID Connect sign-in, provider-agnostic: authorization code + PKCE (S256).

1. ``start``: a random ``state`` (the lookup key), ``nonce`` and PKCE verifier
   are stored server-side for 10 minutes; the client is sent to the provider.
2. ``finish``: the client posts back ``state`` and ``code``. The state is used
   up at once (committed, so a failed exchange cannot be replayed), the code is
   exchanged at the provider's token endpoint (``httpx``) with the verifier,
   and the ID token is validated against the provider's JWKS (PyJWT
   ``PyJWKClient``): RS256 signature, ``iss``, ``aud`` (and ``azp``), ``exp``,
   ``iat`` and our ``nonce``.
3. Users are linked by (provider, ``sub``). A new subject gets a new user; the
   provider's email is copied to the user only when verified and not already
   someone else's: we never attach a provider identity to an existing account
   by email, which would let whoever controls the provider account take it over.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn
from urllib.parse import urlencode

import httpx
import jwt
import msgspec

from api.domains.identity import repository
from api.domains.identity.audit import RequestContext, SecurityEvent, record
from api.domains.identity.digests import new_token
from api.domains.identity.limits import WINDOW, enforce
from api.domains.identity.signin import SignInResult, complete_first_factor, register_user
from api.errors import NotFound, Unauthenticated
from api.security.tokens import TokenCodec
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.settings import Settings, SettingsError

FLOW_TTL_S = 600
HTTP_TIMEOUT_S = 10.0
CLOCK_LEEWAY_S = 30
ID_TOKEN_ALGORITHMS = ["RS256"]
SIGN_IN_FAILED = "the identity provider sign-in could not be completed; start again"


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    issuer: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = None
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str


@dataclass(frozen=True, slots=True)
class Authorization:
    url: str
    state: str
    expires_in: int


def parse_providers(raw: str) -> dict[str, ProviderConfig]:
    if not raw.strip():
        return {}
    try:
        providers = msgspec.json.decode(raw, type=dict[str, ProviderConfig])
    except msgspec.DecodeError as exc:
        raise SettingsError(f"NEARX_OIDC_PROVIDERS is not valid: {exc}") from exc
    for name, provider in providers.items():
        explicit = (provider.authorization_endpoint, provider.token_endpoint, provider.jwks_uri)
        if provider.discovery_url is None and not all(explicit):
            raise SettingsError(f"OIDC provider {name!r} needs discovery_url or all three endpoints")
    return providers


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class OidcRegistry:
    """The configured providers with a per-process cache of discovery documents and JWKS clients."""

    providers: dict[str, ProviderConfig]
    _endpoints: dict[str, Endpoints] = field(default_factory=dict)
    _jwks: dict[str, jwt.PyJWKClient] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcRegistry:
        return cls(parse_providers(settings.oidc_providers))

    def provider(self, name: str) -> ProviderConfig:
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(f"no identity provider named {name!r}")
        return provider

    async def endpoints(self, name: str) -> Endpoints:
        cached = self._endpoints.get(name)
        if cached is not None:
            return cached
        provider = self.provider(name)
        if provider.discovery_url is None:
            found = Endpoints(
                str(provider.authorization_endpoint), str(provider.token_endpoint), str(provider.jwks_uri)
            )
        else:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                response = await http.get(provider.discovery_url)
            response.raise_for_status()
            document = response.json()
            if document.get("issuer") != provider.issuer:
                raise SettingsError(
                    f"OIDC provider {name!r}: discovery issuer does not match the configuration"
                )
            found = Endpoints(
                provider.authorization_endpoint or document["authorization_endpoint"],
                provider.token_endpoint or document["token_endpoint"],
                provider.jwks_uri or document["jwks_uri"],
            )
        self._endpoints[name] = found
        return found

    async def validate_id_token(self, name: str, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The verified claims of an ID token; raises ``jwt.PyJWTError`` (or ValueError) when invalid."""
        provider = self.provider(name)
        endpoints = await self.endpoints(name)
        client = self._jwks.setdefault(endpoints.jwks, jwt.PyJWKClient(endpoints.jwks, cache_keys=True))
        signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            signing_key.key,
            algorithms=ID_TOKEN_ALGORITHMS,
            audience=provider.client_id,
            issuer=provider.issuer,
            leeway=CLOCK_LEEWAY_S,
            options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]},
        )
        if not hmac.compare_digest(str(claims["nonce"]), nonce):
            raise ValueError("the ID token's nonce does not match this sign-in")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != provider.client_id:
            raise ValueError("the ID token was issued to another party (azp)")
        return claims


async def start(
    conn: Connection, settings: Settings, registry: OidcRegistry, name: str, *, context: RequestContext
) -> Authorization:
    """Store a pending flow (rate-limited per client address) and build the provider URL."""
    provider = registry.provider(name)
    endpoints = await registry.endpoints(name)
    state, nonce, verifier = new_token(), new_token(), secrets.token_urlsafe(64)
    now = utc_now()
    async with conn.transaction():
        if context.ip:
            await repository.lock_keys(conn, [f"oidc:ip:{context.ip}"])
            enforce(
                await repository.oidc_flows_by_ip(conn, context.ip, now - WINDOW),
                settings.oidc_starts_per_ip_per_hour,
                now,
                "this network address",
            )
        await repository.insert_oidc_flow(
            conn,
            state=state,
            provider=name,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=provider.redirect_uri,
            ip=context.ip,
            now=now,
            expires_at=now + timedelta(seconds=FLOW_TTL_S),
        )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": provider.redirect_uri,
            "scope": " ".join(provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in endpoints.authorization else "?"
    return Authorization(f"{endpoints.authorization}{separator}{query}", state, FLOW_TTL_S)


async def finish(
    conn: Connection,
    settings: Settings,
    codec: TokenCodec,
    registry: OidcRegistry,
    name: str,
    *,
    state: str,
    code: str,
    context: RequestContext,
) -> SignInResult:
    provider = registry.provider(name)
    now = utc_now()
    flow = await repository.consume_oidc_flow(conn, state=state, provider=name, now=now)  # autocommit
    if flow is None:  # nothing was at stake: refuse without writing (anonymous callers could flood the audit)
        raise Unauthenticated(SIGN_IN_FAILED)
    try:
        id_token = await _exchange(registry, provider, name, code=code, flow=flow)
        claims = await registry.validate_id_token(name, id_token, nonce=flow["nonce"])
    except (httpx.HTTPError, jwt.PyJWTError, ValueError, KeyError) as exc:
        await _fail(conn, name, f"{type(exc).__name__}: {exc}", context)
    subject = str(claims["sub"])
    async with conn.transaction():
        link = await repository.find_oidc_identity(conn, name, subject)
        if link is not None:
            user_id = link["user_id"]
            await repository.touch_oidc_identity(conn, provider=name, subject=subject, now=now)
        else:
            email = claims.get("email") if isinstance(claims.get("email"), str) else None
            own_email = (
                email.lower()
                if email
                and claims.get("email_verified") is True
                and not await repository.email_in_use(conn, email.lower())
                else None
            )
            user_id = await register_user(conn, phone=None, email=own_email, context=context)
            await repository.insert_oidc_identity(
                conn, provider=name, subject=subject, user_id=user_id, email=email, now=now
            )
            await record(conn, SecurityEvent.OIDC_LINKED, context=context, user_id=user_id, provider=name)
        return await complete_first_factor(
            conn, settings, codec, user_id=user_id, method="oidc", context=context
        )


async def _exchange(
    registry: OidcRegistry, provider: ProviderConfig, name: str, *, code: str, flow: repository.Row
) -> str:
    """Trade the authorization code (with the PKCE verifier) for the provider's ID token."""
    endpoints = await registry.endpoints(name)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow["redirect_uri"],
        "client_id": provider.client_id,
        "code_verifier": flow["code_verifier"],
    }
    auth = httpx.BasicAuth(provider.client_id, provider.client_secret) if provider.client_secret else None
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, auth=auth) as http:
        response = await http.post(endpoints.token, data=form, headers={"Accept": "application/json"})
    response.raise_for_status()
    id_token = response.json()["id_token"]
    if not isinstance(id_token, str):
        raise ValueError("the token endpoint returned no ID token")
    return id_token


async def _fail(conn: Connection, name: str, reason: str, context: RequestContext) -> NoReturn:
    """Audit the failure in its own committed transaction, then refuse."""
    async with conn.transaction():
        await record(conn, SecurityEvent.OIDC_FAILED, context=context, provider=name, reason=reason[:300])
    raise Unauthenticated(SIGN_IN_FAILED)
