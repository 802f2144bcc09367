"""Order rules: multi-merchant checkout, the order state machine, refunds, the overdue sweep.

Checkout prices everything on the server and refuses a client whose shown
prices differ (price tampering or a stale cart); it creates one parent order
and one merchant order per merchant, reserves stock, and writes the events, all
in one transaction keyed by the client's ``Idempotency-Key``. The state machine
lives in ``order_status_transitions`` (from, to, who); ``transition`` is the
only way a status changes, it locks the order row first (so the outbox sees
one aggregate's events in commit order) and records who, when and why.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from api import idempotency
from api.domains.catalog import repository as catalog_repo
from api.domains.inventory import service as inventory
from api.domains.matching import service as matching
from api.domains.merchants import service as merchants
from api.domains.orders import repository as repo
from api.domains.orders.ports import (
    CheckoutRisk,
    CheckoutRiskScorer,
    CityClock,
    DeliveryLeg,
    EtaPromiser,
    LiveLeg,
    PromisedEta,
    RefundGateway,
    RefundRequest,
    RiskVerdict,
)
from api.domains.orders.pricing import Line, Promotion, delivery_fee, price_child
from api.domains.orders.schemas import (
    CheckoutInput,
    CheckoutReviewInput,
    EtaPromise,
    FraudCheck,
    HeldCheckout,
    LiveEta,
    MerchantOrder,
    Order,
    OrderLine,
    Refund,
    RefundInput,
    Transition,
    TransitionInput,
)
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.security.principal import Principal, Role
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.event_buffer import EventBuffer
from nearx.geo import haversine_m
from nearx.ids import new_id
from nearx.money import Money
from nearx.outbox import append_event
from nearx.settings import Settings

CUSTOMER_CANCEL_FEE_BP = 1000
"""A customer who cancels after the merchant accepted pays 10% of the items (the kitchen started)."""
SCHEMA_VERSION = 1


class StepUpRequired(Forbidden):
    """The fraud check asks for a second factor: sign in with it and retry (same Idempotency-Key)."""

    slug = "step-up-required"
    assessment: dict[str, Any]


class HeldForReview(Conflict):
    """The fraud check sends this checkout to a person; nothing was ordered or charged."""

    slug = "held-for-review"
    assessment: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who moves an order: ``customer``, ``merchant``, ``courier``, ``admin`` or ``system``."""

    kind: str
    user_id: uuid.UUID | None = None


SYSTEM = Actor("system")


# --------------------------------------------------------------------------- output


def _line_out(row: dict[str, Any]) -> OrderLine:
    return OrderLine(
        id=row["id"],
        product_id=row["product_id"],
        variant_id=row["variant_id"],
        name=row["name"],
        sku=row["sku"],
        quantity=row["quantity"],
        unit_price_minor=row["unit_price_minor"],
        tax_class=row["tax_class"],
        tax_minor=row["tax_minor"],
        line_minor=row["line_minor"],
        refunded_quantity=row["refunded_quantity"],
    )


def _child_out(row: dict[str, Any], items: list[dict[str, Any]]) -> MerchantOrder:
    return MerchantOrder(
        id=row["id"],
        parent_id=row["parent_id"],
        merchant_id=row["merchant_id"],
        status=row["status"],
        currency=row["currency"].strip(),
        items_minor=row["items_minor"],
        delivery_fee_minor=row["delivery_fee_minor"],
        tax_minor=row["tax_minor"],
        discount_minor=row["discount_minor"],
        total_minor=row["total_minor"],
        refunded_minor=row["refunded_minor"],
        cancellation_fee_minor=row["cancellation_fee_minor"],
        cancelled_by=row["cancelled_by"],
        emergency=row["emergency"],
        accept_by=row["accept_by"],
        created_at=row["created_at"],
        items=[_line_out(item) for item in items],
        eta=None
        if row["eta_p50_s"] is None
        else EtaPromise(
            p50_s=row["eta_p50_s"],
            p90_s=row["eta_p90_s"],
            promised_at=row["eta_promised_at"],
            model=row["eta_model"],
            degraded=row["eta_degraded"],
        ),
    )


async def _children_out(
    conn: Connection, rows: list[dict[str, Any]], promiser: EtaPromiser | None = None
) -> list[MerchantOrder]:
    items: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for item in await repo.items_of(conn, [row["id"] for row in rows]):
        items[item["order_id"]].append(item)
    children = [_child_out(row, items[row["id"]]) for row in rows]
    if promiser is None:
        return children
    live = await _live_etas(conn, [child.id for child in children], promiser)
    if not live:
        return children
    return [msgspec.structs.replace(child, eta_live=live.get(child.id)) for child in children]


async def _live_etas(
    conn: Connection, order_ids: list[uuid.UUID], promiser: EtaPromiser
) -> dict[uuid.UUID, LiveEta]:
    """The door ETA of each picked-up order from its courier's last position, per city."""
    now = utc_now()
    by_city: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await repo.live_legs(conn, order_ids):
        by_city[row["city_id"]].append(row)
    live: dict[uuid.UUID, LiveEta] = {}
    for city_id, rows in by_city.items():
        clock = CityClock(city_id, rows[0]["timezone"], str(rows[0]["country"]).strip())
        legs = [LiveLeg((r["lat"], r["lng"]), (r["dropoff_lat"], r["dropoff_lng"]), r["mode"]) for r in rows]
        for row, promise in zip(rows, await promiser.remaining(clock, legs, now), strict=True):
            live[row["merchant_order_id"]] = LiveEta(
                p50_at=now + timedelta(seconds=promise.p50_s),
                p90_at=now + timedelta(seconds=promise.p90_s),
                position_at=row["fixed_at"],
                model=promise.model,
                degraded=promise.degraded,
            )
    return live


async def _order_out(conn: Connection, parent: dict[str, Any], promiser: EtaPromiser | None = None) -> Order:
    children = await repo.children_of(conn, parent["id"])
    return Order(
        id=parent["id"],
        customer_id=parent["customer_id"],
        city_id=parent["city_id"],
        currency=parent["currency"].strip(),
        items_minor=parent["items_minor"],
        delivery_fee_minor=parent["delivery_fee_minor"],
        tax_minor=parent["tax_minor"],
        discount_minor=parent["discount_minor"],
        total_minor=parent["total_minor"],
        emergency=parent["emergency"],
        created_at=parent["created_at"],
        merchant_orders=await _children_out(conn, children, promiser),
        fraud=None
        if parent["fraud_decision"] is None
        else FraudCheck(
            decision=parent["fraud_decision"],
            score=parent["fraud_score"],
            reasons=list(parent["fraud_reasons"]),
            scorer=parent["fraud_scorer"],
        ),
        match_id=parent["match_id"],
    )


# --------------------------------------------------------------------------- checkout


@dataclass(frozen=True, slots=True)
class Scoring:
    """The checkout's scorers (ports in :mod:`api.domains.orders.ports`); ``None``: not scored."""

    risk: CheckoutRiskScorer | None = None
    promiser: EtaPromiser | None = None


async def checkout(
    conn: Connection,
    principal: Principal,
    body: CheckoutInput,
    *,
    key: str,
    settings: Settings,
    scoring: Scoring = Scoring(),
    events: EventBuffer | None = None,
) -> tuple[int, Any]:
    """Create (or replay) the orders of one cart; returns ``(status, body)``.

    ``events``: the process's event buffer, where a match served moments ago may still wait
    to be written; the check that the cart's ``match_id`` was served to this customer
    flushes it first.

    The fraud check decides before anything is written: ``approve`` places the order;
    ``step_up`` places it only in a session signed in with a second factor (else a 403
    ``step-up-required``, and the retry with the same key after the second factor succeeds);
    ``review`` refuses it (a 409 ``held-for-review``). Refused attempts keep their assessment
    (``checkout_fraud_assessments``, written after the rollback) for review and as labels.
    """
    if body.emergency and not body.emergency_reason:
        raise InvalidInput("an emergency order needs a reason (it is audited)")
    if body.match_id is not None and not await matching.served_to(
        conn, body.match_id, principal.user_id, events
    ):
        raise InvalidInput(f"match {body.match_id} was not served to this customer")
    if not body.emergency and body.emergency_reason:
        raise InvalidInput("emergency_reason is only for emergency orders")
    scope = f"orders.create:{principal.user_id}"
    fingerprint = idempotency.request_fingerprint(body)
    now = utc_now()
    variant_ids = sorted({item.variant_id for item in body.items})
    # Lazily free stock held by overdue orders first, in its own transaction, so a
    # failed checkout does not roll the release back.
    await expire_stale(conn, now, variant_ids)
    try:
        async with conn.transaction():
            stored = await idempotency.claim(conn, scope=scope, key=key, fingerprint=fingerprint)
            if stored is not None:
                return stored.status, stored.body
            order = await _place(
                conn, principal, body, now=now, settings=settings, scoring=scoring, fingerprint=fingerprint
            )
            result = msgspec.to_builtins(order)
            await idempotency.remember(conn, scope=scope, key=key, status=201, body=result)
    except (StepUpRequired, HeldForReview) as refused:
        async with conn.transaction():
            await repo.insert_fraud_assessment(conn, refused.assessment)
        raise
    return 201, result


async def _place(
    conn: Connection,
    principal: Principal,
    body: CheckoutInput,
    *,
    now: datetime,
    settings: Settings,
    scoring: Scoring,
    fingerprint: str,
) -> Order:
    variants = {
        row["variant_id"]: row
        for row in await catalog_repo.variants_for_checkout(conn, [i.variant_id for i in body.items])
    }
    unknown = sorted(str(item.variant_id) for item in body.items if item.variant_id not in variants)
    if unknown:
        raise InvalidInput(f"unknown or unavailable products: {', '.join(unknown)}", variant_ids=unknown)
    for item in body.items:
        server_price = variants[item.variant_id]["price_minor"]
        if item.unit_price_minor is not None and item.unit_price_minor != server_price:
            raise InvalidInput(
                f"the price of {item.variant_id} is {server_price}, not {item.unit_price_minor}",
                variant_id=str(item.variant_id),
                unit_price_minor=server_price,
            )

    merchant_ids = sorted({variants[item.variant_id]["merchant_id"] for item in body.items})
    merchant_rows = [await merchants.get_row(conn, merchant_id) for merchant_id in merchant_ids]
    open_flags = await merchants.open_now(conn, merchant_rows, now)
    cities = {row["city_id"] for row in merchant_rows}
    if len(cities) != 1:
        raise InvalidInput("a cart holds merchants of one city only")
    city_id = cities.pop()
    currency = await catalog_repo.city_currency(conn, city_id)
    fee_rule = await repo.delivery_fee_rule(conn, city_id)
    promotion = None
    if body.promo_code is not None:
        promo = await repo.promotion(conn, city_id, body.promo_code, now)
        if promo is None:
            raise InvalidInput(f"promotion {body.promo_code} is not valid")
        promotion = Promotion(promo["percent_bp"], promo["max_discount_minor"])

    children: list[dict[str, Any]] = []
    for merchant in merchant_rows:
        merchants.ensure_can_sell(merchant, is_open_now=open_flags[merchant["id"]])
        distance = round(haversine_m(merchant["lat"], merchant["lng"], body.delivery.lat, body.delivery.lng))
        if distance > merchant["delivery_radius_m"]:
            raise InvalidInput(f"{merchant['name']!r} does not deliver to this point ({distance} m away)")
        lines = [
            Line(
                variant_id=item.variant_id,
                merchant_id=merchant["id"],
                unit_price=Money(variants[item.variant_id]["price_minor"], currency),
                quantity=item.quantity,
                tax_rate_bp=variants[item.variant_id]["tax_rate_bp"],
            )
            for item in body.items
            if variants[item.variant_id]["merchant_id"] == merchant["id"]
        ]
        fee = delivery_fee(
            currency,
            base_minor=fee_rule["base_minor"],
            per_km_minor=fee_rule["per_km_minor"],
            distance_m=distance,
        )
        children.append(
            {
                "merchant": merchant,
                "lines": lines,
                "totals": price_child(lines, fee, promotion),
                "distance": distance,
            }
        )

    zero = Money(0, currency)
    grand = {
        "items": sum((c["totals"].items for c in children), zero),
        "delivery_fee": sum((c["totals"].delivery_fee for c in children), zero),
        "tax": sum((c["totals"].tax for c in children), zero),
        "discount": sum((c["totals"].discount for c in children), zero),
        "total": sum((c["totals"].total for c in children), zero),
    }
    if body.expected_total_minor is not None and body.expected_total_minor != grand["total"].amount_minor:
        raise InvalidInput(
            f"the total is {grand['total'].amount_minor}, not {body.expected_total_minor}",
            total_minor=grand["total"].amount_minor,
        )

    parent_id = new_id()
    assessment = await _fraud_check(
        conn, principal, body, parent_id, city_id, children, grand, now, scoring, fingerprint
    )
    promises = await _promises(conn, city_id, children, body, now, scoring)
    await repo.insert_parent(
        conn,
        {
            "id": parent_id,
            "customer_id": principal.user_id,
            "city_id": city_id,
            "currency": currency,
            "delivery_lat": body.delivery.lat,
            "delivery_lng": body.delivery.lng,
            **{f"{name}_minor": money.amount_minor for name, money in grand.items()},
            "promo_code": body.promo_code,
            "emergency": body.emergency,
            "emergency_reason": body.emergency_reason,
            "session_id": principal.session_id,
            "match_id": body.match_id,
            "fraud_decision": assessment["decision"] if assessment else None,
            "fraud_score": assessment["score"] if assessment else None,
            "fraud_reasons": assessment["reasons"] if assessment else None,
            "fraud_scorer": assessment["scorer"] if assessment else None,
        },
    )
    if assessment is not None:
        await repo.insert_fraud_assessment(conn, {**assessment, "order_id": parent_id})
    if body.emergency:
        assert body.emergency_reason is not None
        await repo.insert_emergency_audit(
            conn,
            parent_id=parent_id,
            city_id=city_id,
            customer_id=principal.user_id,
            reason=body.emergency_reason,
            merchant_ids=merchant_ids,
        )
    accept_by = now + timedelta(seconds=settings.order_accept_timeout_s)
    for child, promise in zip(children, promises, strict=True):
        merchant, totals = child["merchant"], child["totals"]
        child_id = new_id()
        await repo.insert_child(
            conn,
            {
                "id": child_id,
                "parent_id": parent_id,
                "merchant_id": merchant["id"],
                "customer_id": principal.user_id,
                "city_id": city_id,
                "currency": currency,
                "items_minor": totals.items.amount_minor,
                "delivery_fee_minor": totals.delivery_fee.amount_minor,
                "tax_minor": totals.tax.amount_minor,
                "discount_minor": totals.discount.amount_minor,
                "total_minor": totals.total.amount_minor,
                "distance_m": child["distance"],
                "emergency": body.emergency,
                "accept_by": accept_by,
                "eta_p50_s": promise.p50_s if promise else None,
                "eta_p90_s": promise.p90_s if promise else None,
                "eta_model": promise.model if promise else None,
                "eta_degraded": promise.degraded if promise else None,
                "eta_promised_at": now if promise else None,
            },
        )
        await repo.insert_items(
            conn,
            [
                {
                    "id": new_id(),
                    "order_id": child_id,
                    "city_id": city_id,
                    "product_id": variants[line.variant_id]["product_id"],
                    "variant_id": line.variant_id,
                    "name": "{product_name} ({variant_name})".format(**variants[line.variant_id]),
                    "sku": variants[line.variant_id]["sku"],
                    "quantity": line.quantity,
                    "unit_price_minor": line.unit_price.amount_minor,
                    "tax_class": variants[line.variant_id]["tax_class"],
                    "tax_rate_bp": line.tax_rate_bp,
                    "line_minor": line.amount.amount_minor,
                    "tax_minor": line.tax.amount_minor,
                }
                for line in child["lines"]
            ],
        )
        await inventory.reserve(
            conn,
            order_id=child_id,
            lines=[(line.variant_id, line.quantity) for line in child["lines"]],
            expires_at=accept_by,
        )
        await repo.record_transition(
            conn,
            order_id=child_id,
            city_id=city_id,
            from_status=None,
            to_status="placed",
            actor_kind="customer",
            actor_id=principal.user_id,
            reason=None,
        )
        await append_event(
            conn,
            event_type="order.created",
            aggregate_type="merchant_order",
            aggregate_id=child_id,
            payload={
                "order_id": str(child_id),
                "parent_id": str(parent_id),
                "merchant_id": str(merchant["id"]),
                "customer_id": str(principal.user_id),
                "currency": currency,
                "total_minor": totals.total.amount_minor,
                "emergency": body.emergency,
                "accept_by": accept_by.isoformat(),
                "match_id": str(body.match_id) if body.match_id else None,
                "eta_p50_s": promise.p50_s if promise else None,
                "eta_p90_s": promise.p90_s if promise else None,
                "fraud_decision": assessment["decision"] if assessment else None,
            },
            city_id=city_id,
            schema_version=SCHEMA_VERSION,
        )
    parent = await repo.get_parent(conn, parent_id)
    assert parent is not None
    return await _order_out(conn, parent)


async def _fraud_check(
    conn: Connection,
    principal: Principal,
    body: CheckoutInput,
    checkout_id: uuid.UUID,
    city_id: str,
    children: list[dict[str, Any]],
    grand: dict[str, Money],
    now: datetime,
    scoring: Scoring,
    fingerprint: str,
) -> dict[str, Any] | None:
    """Score the attempt; the assessment row to store, or raise when it may not be placed.

    A review a person already cleared for this customer's same cart (same request fingerprint)
    lets it through; one they labelled fraud keeps it held.
    """
    if scoring.risk is None:
        return None
    risk = await _checkout_risk(conn, principal, body, checkout_id, children, grand, now)
    verdict = await scoring.risk.assess_checkout(risk)
    cleared = verdict.decision == "review" and (
        await repo.review_verdict(conn, principal.user_id, fingerprint) is False
    )
    outcome, extra_reasons = _outcome(verdict.decision, second_factor=principal.mfa, cleared=cleared)
    assessment = _assessment_row(risk, verdict, city_id, outcome, extra_reasons, fingerprint)
    if outcome == "step_up_required":
        refused: StepUpRequired | HeldForReview = StepUpRequired(
            "this checkout needs a second factor: verify it and retry", reasons=list(verdict.reasons)
        )
    elif outcome == "held_for_review":
        refused = HeldForReview("this checkout is held for a manual review; nothing was ordered")
    else:
        return assessment
    refused.assessment = assessment
    raise refused


async def _checkout_risk(
    conn: Connection,
    principal: Principal,
    body: CheckoutInput,
    checkout_id: uuid.UUID,
    children: list[dict[str, Any]],
    grand: dict[str, Money],
    now: datetime,
) -> CheckoutRisk:
    main = max(children, key=lambda c: c["totals"].total.amount_minor)["merchant"]
    signals = await repo.fraud_signals(conn, principal.user_id, principal.session_id, now)
    home = signals["home_lat"], signals["home_lng"]
    return CheckoutRisk(
        checkout_id=checkout_id,
        customer_id=principal.user_id,
        merchant_id=main["id"],
        category=main["category"],
        total=grand["total"],
        discount_minor=grand["discount"].amount_minor,
        item_count=sum(line.quantity for child in children for line in child["lines"]),
        promo_code=body.promo_code,
        payment_method=body.payment_method,
        new_device=signals["new_device"],
        device_orders_1h=signals["device_orders_1h"] + 1,
        dropoff_from_home_m=None
        if home[0] is None
        else haversine_m(home[0], home[1], body.delivery.lat, body.delivery.lng),
        prior_orders=signals["prior_orders"],
    )


def _outcome(decision: str, *, second_factor: bool, cleared: bool) -> tuple[str, list[str]]:
    """What a decision does to this checkout, and the reason codes that adds."""
    if decision == "approve":
        return "placed", []
    if decision == "step_up":
        return ("placed", ["second_factor_in_session"]) if second_factor else ("step_up_required", [])
    return ("placed", ["cleared_by_review"]) if cleared else ("held_for_review", [])


def _assessment_row(
    risk: CheckoutRisk,
    verdict: RiskVerdict,
    city_id: str,
    outcome: str,
    extra_reasons: list[str],
    fingerprint: str,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "city_id": city_id,
        "customer_id": risk.customer_id,
        "order_id": None,
        "scorer": verdict.scorer,
        "degraded": verdict.degraded,
        "score": verdict.score,
        "decision": verdict.decision,
        "outcome": outcome,
        "reasons": [*verdict.reasons, *extra_reasons],
        "inputs": msgspec.to_builtins(risk),
        "fingerprint": fingerprint,
    }


async def _promises(
    conn: Connection,
    city_id: str,
    children: list[dict[str, Any]],
    body: CheckoutInput,
    now: datetime,
    scoring: Scoring,
) -> list[PromisedEta | None]:
    """The ETA promise of each merchant order (aligned with ``children``; ``None`` without a promiser)."""
    if scoring.promiser is None:
        return [None] * len(children)
    city = await repo.city_clock(conn, city_id)
    legs = [
        DeliveryLeg(
            merchant_id=child["merchant"]["id"],
            category=child["merchant"]["category"],
            h3_r7=child["merchant"]["h3_r7"],
            pickup=(child["merchant"]["lat"], child["merchant"]["lng"]),
            dropoff=(body.delivery.lat, body.delivery.lng),
            prep_s=float(child["merchant"]["prep_time_min"]) * 60.0,
        )
        for child in children
    ]
    clock = CityClock(city["id"], city["timezone"], str(city["country"]).strip())
    promises: list[PromisedEta | None] = list(await scoring.promiser.promise(clock, legs, now))
    return promises


async def held_checkouts(conn: Connection, limit: int) -> list[HeldCheckout]:
    """The review queue: checkouts the fraud check held, not yet decided, oldest first."""
    return [_held_out(row) for row in await repo.held_checkouts(conn, limit)]


async def review_checkout(
    conn: Connection, principal: Principal, assessment_id: uuid.UUID, body: CheckoutReviewInput
) -> HeldCheckout:
    """A person's verdict on a held checkout: the fraud label, and (cleared) the retry goes through."""
    async with conn.transaction():
        row = await repo.label_held_checkout(
            conn, assessment_id, fraud=body.fraud, reviewer=principal.user_id
        )
        if row is None:
            raise Conflict("this checkout is not waiting for a review")
        await append_event(
            conn,
            event_type="checkout.reviewed",
            aggregate_type="checkout_fraud_assessment",
            aggregate_id=assessment_id,
            payload={
                "assessment_id": str(assessment_id),
                "customer_id": str(row["customer_id"]),
                "fraud": body.fraud,
                "score": row["score"],
                "scorer": row["scorer"],
            },
            city_id=row["city_id"],
            schema_version=SCHEMA_VERSION,
        )
    return _held_out(row)


def _held_out(row: dict[str, Any]) -> HeldCheckout:
    return HeldCheckout(
        id=row["id"],
        customer_id=row["customer_id"],
        city_id=row["city_id"],
        scorer=row["scorer"],
        score=row["score"],
        reasons=list(row["reasons"]),
        inputs=row["inputs"],
        at=row["at"],
        fraud=row["fraud_label"],
        reviewed_at=row["reviewed_at"],
    )


# --------------------------------------------------------------------------- reading


async def promised_p90_s(conn: Connection, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The P90 (seconds) promised at checkout, per merchant order that has one (for dispatch)."""
    return await repo.promised_p90_s(conn, order_ids)


async def _can_see(conn: Connection, principal: Principal, child: dict[str, Any]) -> bool:
    if child["customer_id"] == principal.user_id:
        return True
    if principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa:
        return True
    role = await merchants.staff_role_of(conn, child["merchant_id"], principal.user_id)
    return role is not None


async def get_order(
    conn: Connection, principal: Principal, order_id: uuid.UUID, promiser: EtaPromiser | None = None
) -> Order:
    """The checkout; with a ``promiser``, picked-up merchant orders carry their live door ETA."""
    parent = await repo.get_parent(conn, order_id)
    privileged = principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa
    if parent is None or (parent["customer_id"] != principal.user_id and not privileged):
        raise NotFound(f"order {order_id} was not found")
    return await _order_out(conn, parent, promiser)


async def _visible_child(conn: Connection, principal: Principal, order_id: uuid.UUID) -> dict[str, Any]:
    child = await repo.get_child(conn, order_id)
    if child is None or not await _can_see(conn, principal, child):
        raise NotFound(f"merchant order {order_id} was not found")
    return child


async def get_merchant_order(
    conn: Connection, principal: Principal, order_id: uuid.UUID, promiser: EtaPromiser | None = None
) -> MerchantOrder:
    child = await _visible_child(conn, principal, order_id)
    return (await _children_out(conn, [child], promiser))[0]


async def history(conn: Connection, principal: Principal, order_id: uuid.UUID) -> list[Transition]:
    await _visible_child(conn, principal, order_id)
    return [
        Transition(
            from_status=row["from_status"],
            to_status=row["to_status"],
            actor_kind=row["actor_kind"],
            actor_id=row["actor_id"],
            reason=row["reason"],
            at=row["at"],
        )
        for row in await repo.history(conn, order_id)
    ]


async def merchant_queue(
    conn: Connection, principal: Principal, merchant_id: uuid.UUID, statuses: list[str], limit: int
) -> list[MerchantOrder]:
    """The merchant's open orders, emergencies first (they jump the queue), then oldest first."""
    await merchants.require_staff(conn, merchant_id, principal)
    return await _children_out(conn, await repo.merchant_queue(conn, merchant_id, statuses, limit))


# --------------------------------------------------------------------------- transitions


async def _actor_of(conn: Connection, principal: Principal, child: dict[str, Any]) -> Actor:
    """The capacity in which the caller acts on this order (staff before customer before admin)."""
    if await merchants.staff_role_of(conn, child["merchant_id"], principal.user_id) is not None:
        return Actor("merchant", principal.user_id)
    if child["customer_id"] == principal.user_id:
        return Actor("customer", principal.user_id)
    if principal.has_any(Role.ADMIN, Role.SUPPORT) and principal.mfa:
        return Actor("admin", principal.user_id)
    raise NotFound(f"merchant order {child['id']} was not found")


async def _apply(
    conn: Connection, child: dict[str, Any], to_status: str, actor: Actor, reason: str | None
) -> None:
    """Move a locked order row; must run inside the caller's transaction."""
    from_status = child["status"]
    if not await repo.allowed(conn, from_status, to_status, actor.kind):
        raise Conflict(f"a {actor.kind} cannot move an order from {from_status} to {to_status}")
    fee = 0
    if to_status == "accepted":
        held = await inventory.commit(conn, child["id"])
        if held == 0:
            raise Conflict("the stock hold of this order expired; it can no longer be accepted")
    elif to_status in {"rejected", "cancelled"}:
        await inventory.release(conn, child["id"])
        if to_status == "cancelled" and actor.kind == "customer" and from_status != "placed":
            fee = (
                Money(child["items_minor"], child["currency"].strip())
                .share(CUSTOMER_CANCEL_FEE_BP)
                .amount_minor
            )
    await repo.set_status(
        conn,
        child["id"],
        to_status,
        cancelled_by=actor.kind if to_status == "cancelled" else None,
        cancellation_fee_minor=fee,
    )
    await repo.record_transition(
        conn,
        order_id=child["id"],
        city_id=child["city_id"],
        from_status=from_status,
        to_status=to_status,
        actor_kind=actor.kind,
        actor_id=actor.user_id,
        reason=reason,
    )
    await append_event(
        conn,
        event_type=f"order.{to_status}",
        aggregate_type="merchant_order",
        aggregate_id=child["id"],
        payload={
            "order_id": str(child["id"]),
            "parent_id": str(child["parent_id"]),
            "merchant_id": str(child["merchant_id"]),
            "from": from_status,
            "to": to_status,
            "actor": actor.kind,
            "reason": reason,
            "cancellation_fee_minor": fee,
            "emergency": child["emergency"],
        },
        city_id=child["city_id"],
        schema_version=SCHEMA_VERSION,
    )


async def transition(
    conn: Connection, order_id: uuid.UUID, to_status: str, actor: Actor, reason: str | None = None
) -> MerchantOrder:
    """Move a merchant order (for other contexts too: delivery marks picked_up/delivered as ``courier``)."""
    async with conn.transaction():
        child = await repo.get_child(conn, order_id, for_update=True)
        if child is None:
            raise NotFound(f"merchant order {order_id} was not found")
        await _apply(conn, child, to_status, actor, reason)
        updated = await repo.get_child(conn, order_id)
        assert updated is not None
    return (await _children_out(conn, [updated]))[0]


async def transition_as(
    conn: Connection, principal: Principal, order_id: uuid.UUID, body: TransitionInput
) -> MerchantOrder:
    if body.to in {"refunded", "partially_refunded"}:
        raise InvalidInput("refunds go through the refunds endpoint")
    child = await repo.get_child(conn, order_id)
    if child is None:
        raise NotFound(f"merchant order {order_id} was not found")
    actor = await _actor_of(conn, principal, child)
    if body.to in {"rejected", "cancelled"} and actor.kind != "customer" and not body.reason:
        raise InvalidInput("rejecting or cancelling someone else's order needs a reason")
    return await transition(conn, order_id, body.to, actor, body.reason)


async def expire_stale(conn: Connection, now: datetime, variant_ids: list[uuid.UUID] | None = None) -> int:
    """Cancel placed orders nobody accepted in time and free their stock; then orphaned holds.

    Called by ``nearx orders sweep`` and lazily by checkout for the variants it needs.
    Each order is its own short transaction; ``SKIP LOCKED`` semantics come from
    re-checking the status under the row lock (a merchant accepting meanwhile wins).
    """
    cancelled = 0
    for order_id in await repo.overdue(conn, now, variant_ids):
        async with conn.transaction():
            child = await repo.get_child(conn, order_id, for_update=True)
            if child is None or child["status"] != "placed" or child["accept_by"] > now:
                continue
            await _apply(conn, child, "cancelled", SYSTEM, "not accepted in time")
            cancelled += 1
    async with conn.transaction():
        await inventory.release_expired(conn, now, variant_ids)
    return cancelled


# --------------------------------------------------------------------------- refunds


async def refund(
    conn: Connection,
    principal: Principal,
    order_id: uuid.UUID,
    body: RefundInput,
    *,
    key: str,
    gateway: RefundGateway,
) -> tuple[int, Any]:
    """Refund a delivered order in full or per item; payments is called through ``gateway``."""
    scope = f"orders.refund:{order_id}"
    async with conn.transaction():
        stored = await idempotency.claim(
            conn, scope=scope, key=key, fingerprint=idempotency.request_fingerprint(body)
        )
        if stored is not None:
            return stored.status, stored.body
        child = await repo.get_child(conn, order_id, for_update=True)
        if child is None:
            raise NotFound(f"merchant order {order_id} was not found")
        actor = await _actor_of(conn, principal, child)
        if actor.kind == "merchant":
            await merchants.require_staff(conn, child["merchant_id"], principal, merchants.MANAGERS)
        elif actor.kind != "admin":
            raise Forbidden("refunds are granted by the merchant's managers or by support")
        result = msgspec.to_builtins(
            await _refund_locked(conn, child, body, actor, principal.user_id, gateway)
        )
        await idempotency.remember(conn, scope=scope, key=key, status=201, body=result)
    return 201, result


async def _refund_locked(
    conn: Connection,
    child: dict[str, Any],
    body: RefundInput,
    actor: Actor,
    requested_by: uuid.UUID | None,
    gateway: RefundGateway,
) -> Refund:
    """Refund a locked order in the caller's transaction: amounts, transition, payments call, event."""
    order_id = child["id"]
    items = {row["id"]: row for row in await repo.items_of(conn, [order_id])}
    item_amounts: list[tuple[uuid.UUID, int, int]] = []
    if body.items is None:
        amount = child["total_minor"] - child["refunded_minor"]
        item_amounts = [
            (
                row["id"],
                row["quantity"] - row["refunded_quantity"],
                row["line_minor"] + row["tax_minor"] - row["refunded_minor"],
            )
            for row in items.values()
        ]
    else:
        amount = 0
        for requested in body.items:
            row = items.get(requested.item_id)
            if row is None:
                raise InvalidInput(f"item {requested.item_id} is not part of this order")
            left = row["quantity"] - row["refunded_quantity"]
            if requested.quantity > left:
                raise InvalidInput(f"only {left} of item {requested.item_id} can still be refunded")
            gross = row["line_minor"] + row["tax_minor"]
            if requested.quantity == left:  # the last units take the rounding remainder
                part = gross - row["refunded_minor"]
            else:
                part = gross * requested.quantity // row["quantity"]
            item_amounts.append((row["id"], requested.quantity, part))
            amount += part
        amount = min(amount, child["total_minor"] - child["refunded_minor"])
    if amount <= 0:
        raise Conflict("nothing is left to refund on this order")
    remaining = child["total_minor"] - child["refunded_minor"] - amount
    target = "refunded" if remaining == 0 else "partially_refunded"
    await _apply(conn, child, target, actor, body.reason)
    await repo.add_refund(conn, order_id=order_id, amount_minor=amount, item_amounts=item_amounts)
    refund_id = new_id()
    currency = child["currency"].strip()
    outcome = await gateway.request_refund(
        conn,
        RefundRequest(
            refund_id=refund_id,
            merchant_order_id=order_id,
            parent_order_id=child["parent_id"],
            customer_id=child["customer_id"],
            merchant_id=child["merchant_id"],
            city_id=child["city_id"],
            amount=Money(amount, currency),
            reason=body.reason,
        ),
    )
    await repo.insert_refund(
        conn,
        {
            "id": refund_id,
            "order_id": order_id,
            "city_id": child["city_id"],
            "amount_minor": amount,
            "currency": currency,
            "reason": body.reason,
            "items": [
                {"item_id": str(item_id), "quantity": quantity, "amount_minor": part}
                for item_id, quantity, part in item_amounts
            ],
            "status": outcome.status,
            "payment_reference": outcome.payment_reference,
            "requested_by": requested_by,
        },
    )
    await append_event(
        conn,
        event_type="order.refund_requested",
        aggregate_type="merchant_order",
        aggregate_id=order_id,
        payload={
            "refund_id": str(refund_id),
            "order_id": str(order_id),
            "parent_id": str(child["parent_id"]),
            "customer_id": str(child["customer_id"]),
            "amount_minor": amount,
            "currency": currency,
            "reason": body.reason,
            "status": outcome.status,
        },
        city_id=child["city_id"],
        schema_version=SCHEMA_VERSION,
    )
    return Refund(
        id=refund_id,
        order_id=order_id,
        amount_minor=amount,
        currency=currency,
        reason=body.reason,
        status=outcome.status,
        payment_reference=outcome.payment_reference,
        order_status=target,  # type: ignore[arg-type]
    )


async def settle_trial_return(
    conn: Connection, order_id: uuid.UUID, reason: str, gateway: RefundGateway
) -> str:
    """A home trial ended with the product returned: the sale is undone.

    Runs in the caller's transaction (the booking's completion). A delivered order is
    refunded in full by ``system``; one not yet accepted is cancelled (its stock released);
    anything in between is a 409 (finish the delivery first). Returns the order's new status.
    """
    child = await repo.get_child(conn, order_id, for_update=True)
    if child is None:
        raise NotFound(f"merchant order {order_id} was not found")
    if child["status"] in {"delivered", "partially_refunded"}:
        refund = await _refund_locked(conn, child, RefundInput(reason=reason), SYSTEM, None, gateway)
        return refund.order_status
    await _apply(conn, child, "cancelled", SYSTEM, reason)
    return "cancelled"
