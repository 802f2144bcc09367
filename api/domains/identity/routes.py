"""``/v1/auth`` (sign-in, tokens, second factor, OIDC) and ``/v1/admin/users/{id}/roles``.

Sign-in routes are public (``opt={"public": True}``); the client address they
record is the socket peer (a proxy in front must be configured to pass the
real one through the ASGI server, not via a header we would have to trust).
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.domains.identity import oidc, otp, service, sessions, totp
from api.domains.identity.audit import RequestContext
from api.domains.identity.schemas import (
    OidcAuthorization,
    OidcCallback,
    OtpRequest,
    OtpRequested,
    OtpVerify,
    RefreshRequest,
    RoleChange,
    SecondFactor,
    SignIn,
    Tokens,
    TotpConfirm,
    TotpConfirmed,
    TotpEnrolment,
    UserRoles,
)
from api.domains.identity.signin import SignInResult
from api.domains.notifications.sender import MessageSender, build_sender
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from api.security.revocations import RevocationList
from api.security.tokens import TokenCodec
from nearx.db import Connection
from nearx.settings import Settings

PUBLIC = {"public": True}
USER_AGENT_MAX = 512


def request_context(request: Request[Any, Any, Any]) -> RequestContext:
    client = request.client
    agent = request.headers.get("user-agent")
    return RequestContext(
        ip=client.host if client else None, user_agent=agent[:USER_AGENT_MAX] if agent else None
    )


def provide_codec(state: State) -> TokenCodec:
    codec: TokenCodec = state.token_codec
    return codec


def provide_revocations(state: State) -> RevocationList | None:
    """The worker's revocation list, which revoking routes update after their commit; none
    without a lifespan (partial test apps) or with ``NEARX_REVOCATION_POLL_S=0``."""
    revocations: RevocationList | None = state.get("revocations")
    return revocations


def provide_sender(settings: Settings) -> MessageSender:
    return build_sender(settings)


def provide_oidc(state: State, settings: Settings) -> oidc.OidcRegistry:
    """One registry per application, so discovery documents and JWKS are cached across requests."""
    registry: oidc.OidcRegistry | None = state.get("oidc_registry")
    if registry is None:
        registry = oidc.OidcRegistry.from_settings(settings)
        state["oidc_registry"] = registry
    return registry


def provide_context(request: Request[Any, Any, Any]) -> RequestContext:
    return request_context(request)


def sign_in_body(result: SignInResult) -> SignIn:
    if result.tokens is None:
        return SignIn(status=result.status, mfa_token=result.mfa_token, expires_in=result.mfa_expires_in)
    return SignIn(
        status=result.status,
        access_token=result.tokens.access_token,
        refresh_token=result.tokens.refresh_token,
        token_type="Bearer",
        expires_in=result.tokens.expires_in,
    )


def tokens_body(pair: sessions.TokenPair) -> Tokens:
    return Tokens(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["identity"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    dependencies = {  # noqa: RUF012
        "codec": Provide(provide_codec, sync_to_thread=False),
        "revocations": Provide(provide_revocations, sync_to_thread=False),
        "sender": Provide(provide_sender, sync_to_thread=False),
        "context": Provide(provide_context, sync_to_thread=False),
        "oidc_registry": Provide(provide_oidc, sync_to_thread=False),
    }

    @post(
        "/otp/request",
        operation_id="requestSignInCode",
        summary="Send a one-time sign-in code by SMS or email",
        opt=PUBLIC,
        status_code=HTTP_202_ACCEPTED,
        security=[],
    )
    async def request_code(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        sender: NamedDependency[MessageSender],
        context: NamedDependency[RequestContext],
        data: JSONBody[OtpRequest],
    ) -> OtpRequested:
        """429 with ``Retry-After`` past the per-destination or per-IP hourly limit."""
        expires_in = await otp.request_code(
            conn, settings, sender, channel=data.channel, destination=data.destination, context=context
        )
        return OtpRequested(expires_in=expires_in)

    @post(
        "/otp/verify",
        operation_id="verifySignInCode",
        summary="Sign in with a one-time code",
        opt=PUBLIC,
        status_code=HTTP_200_OK,
        security=[],
    )
    async def verify_code(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        codec: NamedDependency[TokenCodec],
        context: NamedDependency[RequestContext],
        data: JSONBody[OtpVerify],
    ) -> SignIn:
        result = await otp.verify_code(
            conn, settings, codec, destination=data.destination, code=data.code, context=context
        )
        return sign_in_body(result)

    @post(
        "/refresh",
        operation_id="refreshTokens",
        summary="Exchange a refresh token for a new token pair (rotation)",
        opt=PUBLIC,
        status_code=HTTP_200_OK,
        security=[],
    )
    async def refresh(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        codec: NamedDependency[TokenCodec],
        revocations: NamedDependency[RevocationList | None],
        context: NamedDependency[RequestContext],
        data: JSONBody[RefreshRequest],
    ) -> Tokens:
        """Presenting an already-used refresh token revokes its whole session (401)."""
        pair = await sessions.rotate(
            conn, settings, codec, revocations, refresh_token=data.refresh_token, context=context
        )
        return tokens_body(pair)

    @post(
        "/logout", operation_id="logout", summary="End the current session", status_code=HTTP_204_NO_CONTENT
    )
    async def logout(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        revocations: NamedDependency[RevocationList | None],
        context: NamedDependency[RequestContext],
    ) -> None:
        await sessions.end_session(conn, principal, revocations, context=context)

    @post("/totp/enrol", operation_id="enrolTotp", summary="Start TOTP enrolment", status_code=HTTP_200_OK)
    async def enrol_totp(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        context: NamedDependency[RequestContext],
    ) -> TotpEnrolment:
        enrolment = await totp.enrol(conn, settings, principal, context=context)
        return TotpEnrolment(secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri)

    @post(
        "/totp/confirm",
        operation_id="confirmTotp",
        summary="Confirm TOTP enrolment with a code; returns recovery codes",
        status_code=HTTP_200_OK,
    )
    async def confirm_totp(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        codec: NamedDependency[TokenCodec],
        principal: NamedDependency[Principal],
        context: NamedDependency[RequestContext],
        data: JSONBody[TotpConfirm],
    ) -> TotpConfirmed:
        """Also upgrades the current session to ``mfa`` (a new access token is returned)."""
        done = await totp.confirm(conn, settings, codec, principal, code=data.code, context=context)
        return TotpConfirmed(
            recovery_codes=done.recovery_codes, access_token=done.access_token, expires_in=done.expires_in
        )

    @post(
        "/totp/verify",
        operation_id="verifySecondFactor",
        summary="Complete an mfa_required sign-in with a TOTP or recovery code",
        opt=PUBLIC,
        status_code=HTTP_200_OK,
        security=[],
    )
    async def verify_second_factor(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        codec: NamedDependency[TokenCodec],
        context: NamedDependency[RequestContext],
        data: JSONBody[SecondFactor],
    ) -> SignIn:
        pair = await totp.verify_second_factor(
            conn,
            settings,
            codec,
            mfa_token=data.mfa_token,
            code=data.code,
            recovery_code=data.recovery_code,
            context=context,
        )
        return sign_in_body(SignInResult("signed_in", tokens=pair))

    @post(
        "/oidc/{provider:str}/authorize",
        operation_id="startOidcSignIn",
        summary="Start an OpenID Connect sign-in (authorization code + PKCE)",
        opt=PUBLIC,
        status_code=HTTP_200_OK,
        security=[],
    )
    async def start_oidc(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        context: NamedDependency[RequestContext],
        oidc_registry: NamedDependency[oidc.OidcRegistry],
        provider: FromPath[str],
    ) -> OidcAuthorization:
        """Send the user to ``authorization_url``; the provider redirects back with ``code`` and ``state``.
        429 with ``Retry-After`` past ``NEARX_OIDC_STARTS_PER_IP_PER_HOUR``."""
        started = await oidc.start(conn, settings, oidc_registry, provider, context=context)
        return OidcAuthorization(
            authorization_url=started.url, state=started.state, expires_in=started.expires_in
        )

    @post(
        "/oidc/{provider:str}/callback",
        operation_id="finishOidcSignIn",
        summary="Finish an OpenID Connect sign-in with the provider's code and our state",
        opt=PUBLIC,
        status_code=HTTP_200_OK,
        security=[],
    )
    async def finish_oidc(
        self,
        conn: NamedDependency[Connection],
        settings: NamedDependency[Settings],
        codec: NamedDependency[TokenCodec],
        context: NamedDependency[RequestContext],
        oidc_registry: NamedDependency[oidc.OidcRegistry],
        provider: FromPath[str],
        data: JSONBody[OidcCallback],
    ) -> SignIn:
        result = await oidc.finish(
            conn,
            settings,
            codec,
            oidc_registry,
            provider,
            state=data.state,
            code=data.code,
            context=context,
        )
        return sign_in_body(result)


class RoleAdminController(Controller):
    """Platform roles; merchant staff roles are managed by the merchants context."""

    path = "/v1/admin/users"
    tags = ["admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN)]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        "context": Provide(provide_context, sync_to_thread=False),
        "revocations": Provide(provide_revocations, sync_to_thread=False),
    }

    @get("/{user_id:uuid}/roles", operation_id="adminListRoles", summary="A user's platform roles")
    async def list_roles(self, conn: NamedDependency[Connection], user_id: FromPath[uuid.UUID]) -> UserRoles:
        return UserRoles(user_id=user_id, roles=await service.list_roles(conn, user_id))

    @post(
        "/{user_id:uuid}/roles",
        operation_id="adminGrantRole",
        summary="Grant a platform role",
        status_code=HTTP_200_OK,
    )
    async def grant_role(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        context: NamedDependency[RequestContext],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[RoleChange],
    ) -> UserRoles:
        roles = await service.grant_role(conn, principal, user_id, data.role, context=context)
        return UserRoles(user_id=user_id, roles=roles)

    @delete(
        "/{user_id:uuid}/roles/{role:str}",
        operation_id="adminRevokeRole",
        summary="Revoke a platform role",
        status_code=HTTP_200_OK,
    )
    async def revoke_role(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        revocations: NamedDependency[RevocationList | None],
        context: NamedDependency[RequestContext],
        user_id: FromPath[uuid.UUID],
        role: FromPath[Role],
    ) -> UserRoles:
        roles = await service.revoke_role(conn, principal, user_id, role, revocations, context=context)
        return UserRoles(user_id=user_id, roles=roles)
