"""The fraud hook asked before every authorization: approve, step up, or send to review.

``FraudScorer`` is the seam for the serving layer's model; until it answers,
:class:`RulesFraudScorer` applies a few transparent rules. Every assessment is
recorded with its score and reasons, so decisions can be audited and the
model's labels come from real outcomes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from nearx.money import Money


class FraudDecision(StrEnum):
    APPROVE = "approve"
    STEP_UP = "step_up"
    """Ask the customer for a second factor (3-D Secure style) before authorizing."""
    REVIEW = "review"
    """Hold for a person to decide; the intent cannot be confirmed until then."""


@dataclass(frozen=True, slots=True)
class FraudContext:
    intent_id: uuid.UUID
    customer_id: uuid.UUID | None
    amount: Money
    provider: str
    purpose: str
    recent_declines: int
    """Declined authorizations of this customer in the last hour."""
    succeeded_payments: int
    """The customer's earlier successful payments (a history lowers the risk)."""


@dataclass(frozen=True, slots=True)
class FraudAssessment:
    decision: FraudDecision
    score: float
    reasons: tuple[str, ...]
    scorer: str


class FraudScorer(Protocol):
    async def assess(self, context: FraudContext) -> FraudAssessment: ...


LARGE_AMOUNT_MINOR: dict[str, int] = {"NPR": 50_000_00, "INR": 30_000_00}
"""Amounts from which a first-time customer's payment is considered large (others: 500.00)."""


class RulesFraudScorer:
    """Additive rules; score ≥ 0.5 steps up, ≥ 0.8 goes to review."""

    name = "rules"

    async def assess(self, context: FraudContext) -> FraudAssessment:
        score = 0.0
        reasons: list[str] = []
        if context.amount.amount_minor >= LARGE_AMOUNT_MINOR.get(context.amount.currency, 500_00):
            score += 0.5 if context.succeeded_payments == 0 else 0.2
            reasons.append("large_amount")
        if context.recent_declines >= 3:
            score += 0.5
            reasons.append("repeated_declines")
        if context.purpose == "topup" and context.succeeded_payments == 0:
            score += 0.1
            reasons.append("first_payment_is_a_top_up")
        score = min(score, 1.0)
        decision = (
            FraudDecision.REVIEW
            if score >= 0.8
            else FraudDecision.STEP_UP
            if score >= 0.5
            else FraudDecision.APPROVE
        )
        return FraudAssessment(decision, round(score, 3), tuple(reasons), self.name)
