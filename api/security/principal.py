"""The authenticated caller as every handler and service sees it."""

from __future__ import annotations

import uuid
from enum import StrEnum

import msgspec


class Role(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    PROVIDER = "provider"
    COURIER = "courier"
    SUPPORT = "support"
    ADMIN = "admin"


PRIVILEGED_ROLES = frozenset({Role.ADMIN, Role.SUPPORT})
"""Roles whose routes demand a second factor (TOTP) in the session."""


class Principal(msgspec.Struct, frozen=True):
    """A verified access token: the user, their platform roles, and how strongly they signed in.

    Merchant-scoped staff roles are not in the token; services check them
    against the merchant's staff table, so revoking staff takes effect at once.
    """

    user_id: uuid.UUID
    roles: frozenset[Role]
    session_id: uuid.UUID
    mfa: bool = False

    def has_any(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)
