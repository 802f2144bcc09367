"""Payment-intent rules: validation, the lifecycle, provider calls and ledger postings.

Provider calls never run inside a database transaction. Each operation
commits "processing" (with the operation in flight recorded in
``pending_operation``), calls the provider, then applies the reply in a second
transaction. If the provider does not answer, the intent stays in processing
and :func:`reconcile` later asks the provider what happened. Money moves only
in the ledger entry posted with the state change that makes it true, under a
business key (``payment.captured:<intent>``, ``payment.refunded:<refund>``),
so no retry, replayed webhook or reconciliation can post it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import repository
from api.domains.payments.fraud import FraudContext, FraudDecision, FraudScorer, RulesFraudScorer
from api.domains.payments.gateways.base import (
    AuthorizeRequest,
    ChargeOutcome,
    ChargeState,
    Gateway,
    GatewayError,
    GatewayTimeout,
    RefundOutcome,
    RefundState,
    WebhookEvent,
)
from api.domains.payments.settlement import RefundBearer, SettlementLeg, refund_reversal
from api.domains.payments.states import RANK, TERMINAL, IntentStatus, can_transition
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.money import Money, UnknownCurrency, validate_currency
from nearx.outbox import append_event

S = IntentStatus
Row = dict[str, Any]
Source = Literal["reply", "webhook", "reconcile"]
Purpose = Literal["payment", "deposit", "topup"]
CaptureMethod = Literal["automatic", "manual"]

WALLET_PROVIDER = "wallet"

_OUTCOME_STATUS: dict[ChargeState, IntentStatus] = {
    ChargeState.REQUIRES_ACTION: S.REQUIRES_ACTION,
    ChargeState.AUTHORIZED: S.REQUIRES_CAPTURE,
    ChargeState.CAPTURED: S.SUCCEEDED,
    ChargeState.DECLINED: S.REQUIRES_PAYMENT_METHOD,
    ChargeState.CANCELED: S.CANCELED,
}


@dataclass(frozen=True, slots=True)
class NewIntent:
    amount: Money
    provider: str
    purpose: Purpose = "payment"
    capture_method: CaptureMethod = "manual"
    customer_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    city_id: str | None = None
    payment_method: str | None = None
    settlement: list[SettlementLeg] | None = None
    """Legs to credit at capture (a top-up credits the wallet); default: unallocated receipts."""


def money(amount_minor: int, currency: str) -> Money:
    """A validated amount: positive, in a supported currency (else a 422)."""
    try:
        validate_currency(currency)
    except UnknownCurrency as exc:
        raise InvalidInput(str(exc)) from exc
    if amount_minor <= 0:
        raise InvalidInput("amount must be a positive number of minor units")
    return Money(amount_minor, currency)


def gateway_for(gateways: Mapping[str, Gateway], provider: str) -> Gateway:
    try:
        return gateways[provider]
    except KeyError:
        raise InvalidInput(f"unknown payment provider {provider!r}", providers=sorted(gateways)) from None


async def _intent(conn: Connection, intent_id: uuid.UUID, *, lock: bool = False) -> Row:
    row = await repository.get_intent(conn, intent_id, lock=lock)
    if row is None:
        raise NotFound("no such payment intent")
    return row


async def get_intent(conn: Connection, intent_id: uuid.UUID) -> Row:
    return await _intent(conn, intent_id)


async def _move(
    conn: Connection, row: Row, target: IntentStatus, *, actor: str, reason: str | None, **changes: Any
) -> Row:
    """One recorded transition (with its event); an illegal one is a 409."""
    current = IntentStatus(row["status"])
    if not can_transition(current, target):
        raise Conflict(f"a payment intent cannot go from {current} to {target}", status=current.value)
    updated = await repository.update_intent(conn, row["id"], {"status": target.value, **changes})
    await repository.record_transition(conn, row["id"], current.value, target.value, actor, reason)
    await append_event(
        conn,
        event_type=f"payment_intent.{target.value}",
        aggregate_type="payment_intent",
        aggregate_id=row["id"],
        city_id=row["city_id"],
        payload={
            "id": str(row["id"]),
            "from": current.value,
            "reason": reason,
            "amount_captured": updated["amount_captured"],
            "currency": updated["currency"],
        },
    )
    return updated


async def create_intent(
    conn: Connection, gateways: Mapping[str, Gateway], new: NewIntent, *, actor: str
) -> Row:
    gateway = gateway_for(gateways, new.provider)
    if new.capture_method == "manual" and not gateway.supports_manual_capture:
        raise InvalidInput(f"{new.provider} captures immediately; use capture_method 'automatic'")
    if new.provider == WALLET_PROVIDER and new.customer_id is None:
        raise InvalidInput("a wallet payment needs the customer")
    if (
        new.settlement is not None
        and sum(leg.amount_minor for leg in new.settlement) != new.amount.amount_minor
    ):
        raise InvalidInput("settlement legs must add up to the amount")
    async with conn.transaction():
        if new.city_id is not None:
            city = await (
                await conn.execute("SELECT currency FROM cities WHERE id = %s", (new.city_id,))
            ).fetchone()
            if city is None:
                raise InvalidInput(f"unknown city {new.city_id!r}")
            if city["currency"] != new.amount.currency:
                raise InvalidInput(f"{new.city_id} settles in {city['currency']}, not {new.amount.currency}")
        intent_id = new_id()
        row = await repository.insert_intent(
            conn,
            {
                "id": intent_id,
                "city_id": new.city_id,
                "customer_id": new.customer_id,
                "order_id": new.order_id,
                "purpose": new.purpose,
                "provider": new.provider,
                "capture_method": new.capture_method,
                "currency": new.amount.currency,
                "amount_minor": new.amount.amount_minor,
                "status": S.REQUIRES_PAYMENT_METHOD.value,
                "payment_method": new.payment_method,
                "settlement": None if new.settlement is None else msgspec.to_builtins(new.settlement),
            },
        )
        await repository.record_transition(conn, intent_id, None, row["status"], actor, "created")
        await append_event(
            conn,
            event_type="payment_intent.created",
            aggregate_type="payment_intent",
            aggregate_id=intent_id,
            city_id=new.city_id,
            payload={
                "id": str(intent_id),
                "amount": new.amount.amount_minor,
                "currency": new.amount.currency,
                "provider": new.provider,
                "purpose": new.purpose,
            },
        )
    return row


async def check_order_payment(
    conn: Connection, order_id: uuid.UUID, customer_id: uuid.UUID, amount: Money
) -> None:
    """A customer may pay only their own order, in its currency, and not more than it costs."""
    order = await repository.order_payer(conn, order_id)
    if order is None or order["customer_id"] != customer_id:
        raise InvalidInput("no such order")  # someone else's order does not leak
    if order["currency"].strip() != amount.currency:
        raise InvalidInput(f"the order is in {order['currency'].strip()}, not {amount.currency}")
    if amount.amount_minor > order["total_minor"]:
        raise InvalidInput(f"the order costs {order['total_minor']}; a payment cannot authorize more")


async def confirm(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    *,
    payment_method: str | None,
    actor: str,
    scorer: FraudScorer | None = None,
    second_factor: bool = False,
) -> Row:
    """Authorize (and with automatic capture, capture) the intent at its provider.

    The fraud scorer is asked first: a step-up returns the intent in
    ``requires_action`` (``last_error = step_up_required``) unless
    ``second_factor`` says the caller's session already carries one; confirming
    again completes it only with a second factor (else :class:`StepUpRequired`).
    A review leaves it unconfirmed until :func:`decide_review`.
    """
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        method = payment_method or row["payment_method"]
        if not method:
            raise InvalidInput("a payment_method is required to confirm")
        if row["status"] not in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_ACTION):
            raise Conflict(f"cannot confirm a payment intent in status {row['status']}", status=row["status"])
        held = await _fraud_gate(
            conn, row, scorer or RulesFraudScorer(), actor=actor, second_factor=second_factor
        )
        if held is not None:
            return held
        attempt = new_id()
        row = await _move(
            conn,
            row,
            S.PROCESSING,
            actor=actor,
            reason="confirm",
            payment_method=method,
            pending_operation={"op": "authorize", "attempt": str(attempt)},
            last_error=None,
        )
    gateway = gateway_for(gateways, row["provider"])
    request = AuthorizeRequest(
        intent_id=intent_id,
        amount=Money(row["amount_minor"], row["currency"]),
        payment_method=method,
        capture=row["capture_method"] == "automatic",
        customer_id=row["customer_id"],
    )
    try:
        outcome = await gateway.authorize(request, idempotency_key=f"authorize:{intent_id}:{attempt}")
    except GatewayTimeout:
        return await _note_timeout(conn, intent_id)
    except GatewayError as exc:
        outcome = ChargeOutcome(ChargeState.DECLINED, decline_code=f"provider_error: {exc}")
    return await apply_outcome(conn, gateways, intent_id, outcome, source="reply", actor=actor)


STEP_UP_REQUIRED = "step_up_required"
UNDER_REVIEW = "under_review"


class StepUpRequired(Forbidden):
    """The fraud gate asked for a second factor and the caller's session has none."""

    slug = "step-up-required"


async def _fraud_gate(
    conn: Connection, row: Row, scorer: FraudScorer, *, actor: str, second_factor: bool
) -> Row | None:
    """Assess the attempt (inside the confirm transaction); the held intent, or None to proceed."""
    latest = await repository.latest_assessment(conn, row["id"])
    if latest is not None and latest["decided_by"] is not None:
        return None  # a reviewer approved this intent
    if latest is not None and latest["decision"] == FraudDecision.REVIEW:
        raise Conflict("this payment is waiting for a manual review")
    if row["last_error"] == STEP_UP_REQUIRED and row["status"] == S.REQUIRES_ACTION:
        if not second_factor:
            raise StepUpRequired("this payment needs a second factor (TOTP) in the session")
        return None
    declines, paid = await repository.fraud_history(conn, row["customer_id"])
    assessment = await scorer.assess(
        FraudContext(
            intent_id=row["id"],
            customer_id=row["customer_id"],
            amount=Money(row["amount_minor"], row["currency"]),
            provider=row["provider"],
            purpose=row["purpose"],
            recent_declines=declines,
            succeeded_payments=paid,
        )
    )
    await repository.record_assessment(
        conn,
        row["id"],
        scorer=assessment.scorer,
        score=assessment.score,
        decision=assessment.decision.value,
        reasons=list(assessment.reasons),
    )
    if assessment.decision == FraudDecision.STEP_UP and not second_factor:
        return await _move(
            conn,
            row,
            S.REQUIRES_ACTION,
            actor=actor,
            reason="fraud:step_up",
            action_url=f"nearx://step-up/{row['id']}",
            last_error=STEP_UP_REQUIRED,
        )
    if assessment.decision == FraudDecision.REVIEW:
        return await repository.update_intent(conn, row["id"], {"last_error": UNDER_REVIEW})
    return None


async def decide_review(
    conn: Connection, gateways: Mapping[str, Gateway], intent_id: uuid.UUID, *, approve: bool, reviewer: str
) -> Row:
    """A person's decision on a payment held for review: approve (it can be confirmed) or cancel it."""
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        latest = await repository.latest_assessment(conn, intent_id)
        if latest is None or latest["decision"] != FraudDecision.REVIEW or latest["decided_by"] is not None:
            raise Conflict("this payment is not waiting for a review")
        await repository.record_assessment(
            conn,
            intent_id,
            scorer="manual",
            score=latest["score"],
            decision=(FraudDecision.APPROVE if approve else FraudDecision.REVIEW).value,
            reasons=[*latest["reasons"], "approved" if approve else "rejected"],
            decided_by=reviewer,
        )
        await append_event(
            conn,
            event_type="payment.review_decided",
            aggregate_type="payment_intent",
            aggregate_id=intent_id,
            city_id=row["city_id"],
            payload={
                "intent_id": str(intent_id),
                "customer_id": None if row["customer_id"] is None else str(row["customer_id"]),
                "decision": "approve" if approve else "reject",
                "scorer": latest["scorer"],
                "score": latest["score"],
                "reasons": list(latest["reasons"]),
                "amount_minor": row["amount_minor"],
                "currency": row["currency"],
                "provider": row["provider"],
                "reviewer": reviewer,
            },
        )
        if approve:
            return await repository.update_intent(conn, intent_id, {"last_error": None})
        return await _move(conn, row, S.CANCELED, actor=reviewer, reason="fraud:rejected")


async def held_for_review(conn: Connection, *, after: uuid.UUID | None, limit: int) -> list[Row]:
    """Payments waiting for a person's decision, oldest first, with the score and reasons."""
    return await repository.held_for_review(conn, after=after, limit=limit)


async def _note_timeout(conn: Connection, intent_id: uuid.UUID) -> Row:
    """The provider did not answer: stay in processing for :func:`reconcile`."""
    async with conn.transaction():
        return await repository.update_intent(conn, intent_id, {"last_error": "provider_timeout"})


async def capture(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    *,
    amount: Money | None,
    actor: str,
    settlement: list[SettlementLeg] | None = None,
) -> Row:
    """Capture all or part of an authorization; the rest is released (as Stripe does)."""
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        authorized = Money(row["amount_minor"], row["currency"])
        to_capture = authorized if amount is None else amount
        if to_capture.currency != authorized.currency:
            raise InvalidInput(f"the intent is in {authorized.currency}, not {to_capture.currency}")
        if to_capture.amount_minor <= 0:
            raise InvalidInput("amount must be a positive number of minor units")
        if to_capture.amount_minor > authorized.amount_minor:
            raise InvalidInput(
                f"cannot capture {to_capture.amount_minor}: only {authorized.amount_minor} is authorized"
            )
        if settlement is not None and sum(leg.amount_minor for leg in settlement) != to_capture.amount_minor:
            raise InvalidInput("settlement legs must add up to the captured amount")
        if row["status"] != S.REQUIRES_CAPTURE:
            raise Conflict(f"cannot capture a payment intent in status {row['status']}", status=row["status"])
        operation: dict[str, Any] = {"op": "capture", "amount": to_capture.amount_minor}
        if settlement is not None:
            operation["settlement"] = msgspec.to_builtins(settlement)
        row = await _move(conn, row, S.PROCESSING, actor=actor, reason="capture", pending_operation=operation)
    gateway = gateway_for(gateways, row["provider"])
    try:
        outcome = await gateway.capture(
            row["provider_ref"], to_capture, idempotency_key=f"capture:{intent_id}"
        )
    except GatewayTimeout:
        return await _note_timeout(conn, intent_id)
    except GatewayError as exc:
        outcome = ChargeOutcome(ChargeState.AUTHORIZED, row["provider_ref"], decline_code=str(exc))
    return await apply_outcome(conn, gateways, intent_id, outcome, source="reconcile", actor=actor)


async def cancel(
    conn: Connection, gateways: Mapping[str, Gateway], intent_id: uuid.UUID, *, actor: str, reason: str
) -> Row:
    """Cancel before capture; an authorization is voided at the provider (a wallet hold released)."""
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        if row["status"] in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_ACTION):
            return await _move(conn, row, S.CANCELED, actor=actor, reason=reason, pending_operation=None)
        if row["status"] != S.REQUIRES_CAPTURE:
            raise Conflict(f"cannot cancel a payment intent in status {row['status']}", status=row["status"])
        row = await _move(
            conn,
            row,
            S.PROCESSING,
            actor=actor,
            reason=reason,
            pending_operation={"op": "cancel", "reason": reason},
        )
    gateway = gateway_for(gateways, row["provider"])
    try:
        outcome = await gateway.cancel(row["provider_ref"], idempotency_key=f"cancel:{intent_id}")
    except GatewayTimeout:
        return await _note_timeout(conn, intent_id)
    return await apply_outcome(conn, gateways, intent_id, outcome, source="reconcile", actor=actor)


def _target_for(row: Row, outcome: ChargeOutcome, source: Source) -> IntentStatus | None:
    """Where a provider's report moves the intent, or None to ignore it (stale or out of order)."""
    target = _OUTCOME_STATUS.get(outcome.state)
    current = IntentStatus(row["status"])
    if target is None or current in TERMINAL:
        return None
    if current == S.PROCESSING:
        op = (row["pending_operation"] or {}).get("op")
        if op == "authorize":
            return target
        if target in (S.SUCCEEDED, S.CANCELED):
            return target
        # still merely authorized: the capture or void never happened at the provider
        if target == S.REQUIRES_CAPTURE and source == "reconcile":
            return target
        return None
    if RANK[target] > RANK[current] and can_transition(current, target):
        return target
    # the customer's redirect or 3-D Secure attempt failed: they may try another method
    if current == S.REQUIRES_ACTION and target == S.REQUIRES_PAYMENT_METHOD:
        return target
    return None


async def apply_outcome(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    outcome: ChargeOutcome,
    *,
    source: Source,
    actor: str,
) -> Row:
    """Apply what the provider reported; monotonic, so late or replayed reports change nothing."""
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        target = _target_for(row, outcome, source)
        if target is None:
            return row
        changes: dict[str, Any] = {"pending_operation": None}
        if outcome.provider_ref:
            changes["provider_ref"] = outcome.provider_ref
        if target == S.REQUIRES_ACTION:
            changes["action_url"] = outcome.action_url
        elif target == S.REQUIRES_CAPTURE:
            now = utc_now()
            gateway = gateway_for(gateways, row["provider"])
            changes |= {
                "authorized_at": now,
                "expires_at": now + gateway.authorization_ttl,
                "last_error": outcome.decline_code,
            }
        elif target == S.REQUIRES_PAYMENT_METHOD:
            changes["last_error"] = outcome.decline_code or "declined"
        elif target == S.SUCCEEDED:
            changes["amount_captured"] = await _post_capture(conn, row, outcome)
            changes["last_error"] = None
        elif target == S.CANCELED:
            changes["last_error"] = None
        return await _move(
            conn, row, target, actor=actor, reason=f"{source}:{outcome.state.value}", **changes
        )


def capture_source(row: Row) -> AccountRef:
    """The account captured money comes from: the customer's wallet hold or the provider's clearing."""
    if row["provider"] == WALLET_PROVIDER:
        return AccountRef(AccountKind.WALLET_HOLD, row["currency"], row["customer_id"])
    return AccountRef(AccountKind.GATEWAY_CLEARING, row["currency"], row["provider"])


def refund_target(row: Row) -> AccountRef:
    """Where refunded money goes: back to the wallet, or out through the provider's clearing."""
    if row["provider"] == WALLET_PROVIDER:
        return AccountRef(AccountKind.CUSTOMER_WALLET, row["currency"], row["customer_id"])
    return AccountRef(AccountKind.GATEWAY_CLEARING, row["currency"], row["provider"])


async def _post_capture(conn: Connection, row: Row, outcome: ChargeOutcome) -> int:
    """Post the capture entry and return the captured amount."""
    pending = row["pending_operation"] or {}
    captured = outcome.amount_captured_minor or int(pending.get("amount") or row["amount_minor"])
    raw_legs = pending.get("settlement") or row["settlement"]
    legs = msgspec.convert(raw_legs, list[SettlementLeg]) if raw_legs else []
    if sum(leg.amount_minor for leg in legs) != captured:
        legs = [SettlementLeg(AccountKind.UNALLOCATED_RECEIPTS.value, None, captured)]
    currency = row["currency"]
    entry = [ledger.debit(capture_source(row), captured)]
    entry += [ledger.credit(leg.account(currency), leg.amount_minor) for leg in legs]
    released = row["amount_minor"] - captured
    if row["provider"] == WALLET_PROVIDER and released:
        entry += [ledger.debit(capture_source(row), released), ledger.credit(refund_target(row), released)]
    await ledger.post(
        conn,
        kind="payment.captured",
        business_key=f"payment.captured:{row['id']}",
        legs=entry,
        reference_type="payment_intent",
        reference_id=row["id"],
    )
    await repository.update_intent(conn, row["id"], {"settlement": msgspec.to_builtins(legs)})
    return captured


async def reserve_refund(
    conn: Connection,
    row: Row,
    *,
    amount: Money,
    bearer: RefundBearer,
    request_key: str,
    reason: str | None,
    status: Literal["pending", "requested"] = "pending",
) -> Row:
    """Validate and record a refund against a locked, captured intent, in the caller's transaction.

    Pending and requested refunds count against what remains refundable, so
    concurrent refunds can never add up to more than was captured.
    """
    existing = await repository.find_refund(conn, row["id"], request_key)
    if existing is not None:
        if existing["amount_minor"] != amount.amount_minor or existing["bearer"] != bearer:
            raise InvalidInput("this refund key was already used for a different refund")
        return existing
    if amount.currency != row["currency"]:
        raise InvalidInput(f"the intent is in {row['currency']}, not {amount.currency}")
    if row["status"] != S.SUCCEEDED:
        raise Conflict(f"cannot refund a payment intent in status {row['status']}", status=row["status"])
    if row["purpose"] == "topup":
        raise InvalidInput("a wallet top-up is not refundable; the balance can be paid out instead")
    reserved = await repository.pending_refund_total(conn, row["id"])
    refundable = row["amount_captured"] - row["amount_refunded"] - reserved
    if amount.amount_minor > refundable:
        raise InvalidInput(f"cannot refund {amount.amount_minor}: only {refundable} remains refundable")
    return await repository.insert_refund(
        conn,
        {
            "id": new_id(),
            "intent_id": row["id"],
            "request_key": request_key,
            "amount_minor": amount.amount_minor,
            "currency": amount.currency,
            "bearer": bearer,
            "status": status,
            "reason": reason,
        },
    )


async def refund(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    intent_id: uuid.UUID,
    *,
    amount: Money,
    bearer: RefundBearer,
    request_key: str,
    actor: str,
    reason: str | None = None,
) -> Row:
    """Refund part or all of what was captured; one refund per ``request_key``."""
    async with conn.transaction():
        row = await _intent(conn, intent_id, lock=True)
        refund_row = await reserve_refund(
            conn, row, amount=amount, bearer=bearer, request_key=request_key, reason=reason
        )
    if refund_row["status"] != "pending":
        return refund_row
    return await _send_refund(conn, gateways, row, refund_row, actor=actor)


async def _send_refund(
    conn: Connection, gateways: Mapping[str, Gateway], row: Row, refund_row: Row, *, actor: str
) -> Row:
    """Ask the provider to refund (idempotent by the refund's id); a timeout leaves it pending."""
    amount = Money(refund_row["amount_minor"], refund_row["currency"])
    try:
        outcome = await gateway_for(gateways, row["provider"]).refund(
            row["provider_ref"], amount, idempotency_key=f"refund:{refund_row['id']}"
        )
    except GatewayTimeout:
        return refund_row
    return await finish_refund(conn, refund_row["id"], outcome, actor=actor)


async def dispatch_requested_refunds(conn: Connection, gateways: Mapping[str, Gateway]) -> int:
    """Send the refunds other contexts requested inside their own transactions."""
    sent = 0
    for refund_id in await repository.requested_refunds(conn):
        async with conn.transaction():
            if not await repository.mark_refund_sent(conn, refund_id):
                continue
            refund_row = await repository.get_refund(conn, refund_id)
            assert refund_row is not None
            row = await _intent(conn, refund_row["intent_id"])
        await _send_refund(conn, gateways, row, {**refund_row, "status": "pending"}, actor="dispatcher")
        sent += 1
    return sent


async def finish_refund(conn: Connection, refund_id: uuid.UUID, outcome: RefundOutcome, *, actor: str) -> Row:
    """Record the provider's answer; a success reverses the settlement legs in the ledger."""
    if outcome.state == RefundState.PENDING:
        refund_row = await repository.get_refund(conn, refund_id)
        assert refund_row is not None
        return refund_row
    async with conn.transaction():
        refund_row = await repository.get_refund(conn, refund_id, lock=True)
        assert refund_row is not None
        if refund_row["status"] != "pending":
            return refund_row
        row = await _intent(conn, refund_row["intent_id"], lock=True)
        if outcome.state == RefundState.FAILED:
            return await repository.finish_refund(
                conn, refund_id, "failed", outcome.provider_ref, outcome.failure_reason
            )
        amount = int(refund_row["amount_minor"])
        legs = msgspec.convert(row["settlement"] or [], list[SettlementLeg])
        reversal = refund_reversal(
            legs,
            captured=row["amount_captured"],
            refunded_before=row["amount_refunded"],
            amount=amount,
            bearer=refund_row["bearer"],
        )
        currency = row["currency"]
        await ledger.post(
            conn,
            kind="payment.refunded",
            business_key=f"payment.refunded:{refund_id}",
            legs=[
                *(ledger.debit(leg.account(currency), leg.amount_minor) for leg in reversal),
                ledger.credit(refund_target(row), amount),
            ],
            reference_type="payment_refund",
            reference_id=refund_id,
        )
        await repository.update_intent(conn, row["id"], {"amount_refunded": row["amount_refunded"] + amount})
        done = await repository.finish_refund(conn, refund_id, "succeeded", outcome.provider_ref, None)
        await append_event(
            conn,
            event_type="payment_refund.succeeded",
            aggregate_type="payment_intent",
            aggregate_id=row["id"],
            city_id=row["city_id"],
            payload={"refund_id": str(refund_id), "amount": amount, "currency": currency, "by": actor},
        )
        return done


async def refresh(
    conn: Connection, gateways: Mapping[str, Gateway], intent_id: uuid.UUID, *, actor: str
) -> Row:
    """Ask the provider for the truth now (a customer came back from a redirect-based checkout)."""
    row = await _intent(conn, intent_id)
    outcome = await gateway_for(gateways, row["provider"]).retrieve(
        intent_id, row["provider_ref"], Money(row["amount_minor"], row["currency"])
    )
    return await apply_outcome(conn, gateways, intent_id, outcome, source="reply", actor=actor)


WebhookResult = Literal["duplicate", "unknown_intent", "ignored", "applied", "stale"]


async def handle_webhook(
    conn: Connection, gateways: Mapping[str, Gateway], provider: str, event: WebhookEvent
) -> WebhookResult:
    """Apply a verified provider event once: replays are deduplicated by event id, and a late
    event never moves an intent backwards (see :func:`apply_outcome`)."""
    async with conn.transaction():
        if not await repository.remember_webhook(conn, provider, event.event_id, event.event_type):
            return "duplicate"
        row = await repository.find_by_provider_ref(conn, provider, event.provider_ref)
        if row is None:
            return "unknown_intent"
        if event.outcome is None:
            return "ignored"
        after = await apply_outcome(
            conn, gateways, row["id"], event.outcome, source="webhook", actor=f"webhook:{provider}"
        )
        return "applied" if after["status"] != row["status"] else "stale"


RECONCILE_GRACE = timedelta(minutes=2)
"""How long an in-flight provider call may take before reconciliation asks the provider."""


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    intents_settled: int
    refunds_settled: int
    authorizations_expired: int
    still_unknown: int
    refunds_dispatched: int


async def reconcile(
    conn: Connection,
    gateways: Mapping[str, Gateway],
    *,
    now: datetime | None = None,
    older_than: timedelta = RECONCILE_GRACE,
) -> ReconcileReport:
    """Settle what timeouts left open by asking each provider, and void expired authorizations.

    Only operations untouched for ``older_than`` are settled: a younger one may
    still be waiting for its provider's reply, and asking the provider before
    its request arrived would wrongly read as "never happened".
    """
    now = now or utc_now()
    settled = refunds_done = expired = unknown = 0
    dispatched = await dispatch_requested_refunds(conn, gateways)
    for intent_id in await repository.stale_open(conn, now - older_than):
        row = await _intent(conn, intent_id)
        try:
            outcome = await gateway_for(gateways, row["provider"]).retrieve(
                intent_id, row["provider_ref"], Money(row["amount_minor"], row["currency"])
            )
        except (GatewayTimeout, GatewayError):
            unknown += 1
            continue
        after = await apply_outcome(conn, gateways, intent_id, outcome, source="reconcile", actor="reconcile")
        if after["status"] == row["status"]:
            unknown += 1
        else:
            settled += 1
    for refund_id in await repository.pending_refunds(conn, now - older_than):
        refund_row = await repository.get_refund(conn, refund_id)
        assert refund_row is not None
        row = await _intent(conn, refund_row["intent_id"])
        try:
            answer = await gateway_for(gateways, row["provider"]).retrieve_refund(
                f"refund:{refund_id}", row["provider_ref"], Money(refund_row["amount_minor"], row["currency"])
            )
        except (GatewayTimeout, GatewayError):
            unknown += 1
            continue
        done = await finish_refund(conn, refund_id, answer, actor="reconcile")
        refunds_done += done["status"] != "pending"
    for intent_id in await repository.expired_authorizations(conn, now):
        after = await cancel(conn, gateways, intent_id, actor="reconcile", reason="authorization_expired")
        expired += after["status"] == S.CANCELED
    return ReconcileReport(settled, refunds_done, expired, unknown, dispatched)
