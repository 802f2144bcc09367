"""The insurer port: goods-in-transit claims leave the platform through :class:`Insurer` only.

A claim is written (``pending``) in the transaction of the incident that caused
it; the safety job hands it to the insurer after commit and stores the
insurer's reference (``filed``), so a failing insurer delays a claim, never
loses it. The sandbox insurer appends each claim to a JSON-lines file under
``NEARX_HOME`` a developer can read; production needs a real adapter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Protocol

import msgspec

from api.domains.notifications.sandbox import append_line
from nearx.settings import Settings


class ClaimToFile(msgspec.Struct, frozen=True, kw_only=True):
    claim_id: uuid.UUID
    policy_id: str
    delivery_id: uuid.UUID
    incident_id: uuid.UUID
    claimed_minor: int
    currency: str
    reason: str
    occurred_at: datetime


class Insurer(Protocol):
    async def file_claim(self, claim: ClaimToFile) -> str:
        """Submit the claim; returns the insurer's reference. Filing the same claim id twice
        must return the same reference (the job retries after a crash)."""
        ...


class InsuranceNotConfigured(RuntimeError):
    """Production mode has no real insurer adapter."""


class SandboxInsurer:
    """Records claims in ``home/sandbox/insurance_claims.jsonl``; the reference derives from the claim id."""

    def __init__(self, settings: Settings) -> None:
        if settings.mode != "sandbox":
            raise InsuranceNotConfigured("the sandbox insurer is only available in sandbox mode")
        self.path = settings.home / "sandbox" / "insurance_claims.jsonl"

    async def file_claim(self, claim: ClaimToFile) -> str:
        reference = f"SBX-{claim.claim_id.hex[:12].upper()}"
        line = json.dumps({"reference": reference, **msgspec.to_builtins(claim)})
        await asyncio.to_thread(append_line, self.path, line)
        return reference


def build_insurer(settings: Settings) -> Insurer:
    """The insurer for this deployment: the sandbox in sandbox mode, nothing else yet."""
    if settings.mode == "sandbox":
        return SandboxInsurer(settings)
    raise InsuranceNotConfigured("production mode needs a real insurer adapter, and none is configured")
