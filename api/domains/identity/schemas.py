"""Request and response bodies of the identity routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Input, Output
from api.security.principal import Role

Destination = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        description="E.164 phone number (+9779801234567) or email address",
        examples=["+9779801234567", "ana@example.com"],
    ),
]
SixDigits = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", description="six digits")]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
RecoveryCode = Annotated[str, msgspec.Meta(min_length=6, max_length=32)]


class OtpRequest(Input):
    channel: Literal["sms", "email"]
    destination: Destination


class OtpRequested(Output):
    expires_in: int
    """Seconds the code stays valid. The same answer whether or not an account exists."""
    status: Literal["sent"] = "sent"


class OtpVerify(Input):
    destination: Destination
    code: SixDigits


class SignIn(Output, omit_defaults=True):
    """``signed_in`` carries tokens; ``mfa_required`` carries an ``mfa_token`` for
    ``POST /v1/auth/totp/verify``; ``mfa_enrolment_required`` carries tokens WITHOUT
    privileged roles until TOTP is enrolled and confirmed."""

    status: Literal["signed_in", "mfa_required", "mfa_enrolment_required"]
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None
    mfa_token: str | None = None


class RefreshRequest(Input):
    refresh_token: OpaqueToken


class Tokens(Output):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"


class TotpEnrolment(Output):
    secret: str
    provisioning_uri: str
    """``otpauth://`` URI for an authenticator app (show it as a QR code)."""


class TotpConfirm(Input):
    code: SixDigits


class TotpConfirmed(Output):
    recovery_codes: list[str]
    """Shown once: each works once instead of a TOTP code."""
    access_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"


class SecondFactor(Input):
    mfa_token: OpaqueToken
    code: SixDigits | None = None
    recovery_code: RecoveryCode | None = None


class OidcAuthorization(Output):
    authorization_url: str
    state: str
    expires_in: int


class OidcCallback(Input):
    state: OpaqueToken
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class RoleChange(Input):
    role: Role


class UserRoles(Output):
    user_id: uuid.UUID
    roles: list[Role]
