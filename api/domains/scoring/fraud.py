"""The fraud model behind the API's two fraud ports, with the rules whenever it cannot answer.

- payments' :class:`~api.domains.payments.fraud.FraudScorer` (``app.state.fraud_scorer``),
  asked before every authorisation. A payment carries less than a checkout (its amount, the
  provider, the customer), so the model sees the rest as missing; the checkout's own
  assessment, with the whole basket and device, is the richer one.
- orders' :class:`~api.domains.orders.ports.CheckoutRiskScorer` (``app.state.checkout_risk``).

When the model has no verdict (no champion, the online store down, an error, over the
latency budget) :class:`~api.domains.payments.fraud.RulesFraudScorer` decides and the
answer is marked: a ``degraded:<reason>`` reason code on payments' assessment, the
``degraded`` field on the checkout's. Model answers name the scorer ``nearx-fraud@<version>``.
"""

from __future__ import annotations

from dataclasses import replace

from api.domains.orders.ports import CheckoutRisk, RiskVerdict
from api.domains.payments.fraud import (
    FraudAssessment,
    FraudContext,
    FraudDecision,
    FraudScorer,
    RulesFraudScorer,
)
from serving.fraud import FraudRequest, FraudScore
from serving.runtime import ScoringRuntime

PAYMENT_METHODS = {
    "stripe": "card",
    "sandbox": "card",
    "esewa": "wallet",
    "khalti": "wallet",
    "phonepe": "wallet",
    "wallet": "wallet",
}
"""Payment providers as the model's payment methods (card / wallet / cash); others are unknown."""


class ServingFraudScorer:
    name = "model"

    def __init__(self, runtime: ScoringRuntime, rules: FraudScorer | None = None) -> None:
        self.runtime = runtime
        self.rules = rules or RulesFraudScorer()

    async def assess(self, context: FraudContext) -> FraudAssessment:
        verdict = await self.runtime.score_fraud(
            FraudRequest(
                customer_id=str(context.customer_id) if context.customer_id else None,
                merchant_id=None,
                total_minor=context.amount.amount_minor,
                payment_method=PAYMENT_METHODS.get(context.provider),
            )
        )
        if isinstance(verdict, str):
            fallback = await self.rules.assess(context)
            return replace(fallback, reasons=(*fallback.reasons, f"degraded:{verdict}"))
        return FraudAssessment(
            FraudDecision(verdict.decision), round(verdict.probability, 4), verdict.reasons, _scorer(verdict)
        )

    async def assess_checkout(self, risk: CheckoutRisk) -> RiskVerdict:
        verdict = await self.runtime.score_fraud(
            FraudRequest(
                customer_id=str(risk.customer_id),
                merchant_id=str(risk.merchant_id),
                total_minor=risk.total.amount_minor,
                discount_minor=risk.discount_minor,
                item_count=risk.item_count,
                new_device=risk.new_device,
                phone_changed_recently=None,  # identity has no phone-change flow to ask yet
                device_orders_1h=risk.device_orders_1h,
                dropoff_from_home_m=risk.dropoff_from_home_m,
                promo_code=risk.promo_code,
                payment_method=risk.payment_method,
                category=risk.category,
            )
        )
        if isinstance(verdict, str):
            rules = await self.rules.assess(
                FraudContext(
                    intent_id=risk.checkout_id,
                    customer_id=risk.customer_id,
                    amount=risk.total,
                    provider="checkout",
                    purpose="payment",
                    recent_declines=0,
                    succeeded_payments=risk.prior_orders,
                )
            )
            return RiskVerdict(rules.decision.value, rules.score, rules.reasons, rules.scorer, verdict)
        return RiskVerdict(verdict.decision, round(verdict.probability, 4), verdict.reasons, _scorer(verdict))


def _scorer(verdict: FraudScore) -> str:
    return f"{verdict.model}@{verdict.version}"
