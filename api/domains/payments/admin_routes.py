"""Back-office payments: fraud reviews, disputes, payout batches and party statements.

Every route needs a privileged role with a second factor in the session
(``requires_role`` demands MFA for admin and support).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.domains.payments import disputes, payouts, service
from api.domains.payments.gateways.registry import configured_gateways
from api.domains.payments.schemas import (
    DisputeIn,
    DisputeOut,
    DisputeResolveIn,
    IntentOut,
    PayoutBatchOut,
    PayoutBatchSummary,
    PayoutRunIn,
    PayoutRunOut,
    ReviewDecisionIn,
    ReviewOut,
)
from api.domains.payments.statements import statement_csv
from api.errors import InvalidInput
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor
from api.security.guards import requires_role
from api.security.principal import Principal, Role
from nearx.db import Connection
from nearx.settings import Settings

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, QueryParameter(description="next_cursor of the previous page")]


def _review_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(decode_cursor(cursor)[0]))
    except (IndexError, ValueError) as exc:
        raise InvalidInput("cursor is not valid") from exc


def _batch_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        end, currency = decode_cursor(cursor)
        return datetime.fromisoformat(str(end)), str(currency)
    except ValueError as exc:
        raise InvalidInput("cursor is not valid") from exc


class FraudReviewController(Controller):
    path = "/v1/admin/payment-reviews"
    tags = ["payments", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN, Role.SUPPORT)]  # noqa: RUF012

    @get("/", operation_id="listPaymentReviews", summary="Payments held by the fraud gate for review")
    async def list_held(
        self, conn: NamedDependency[Connection], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> Page[ReviewOut]:
        after = None if cursor is None else _review_cursor(cursor)
        rows = await service.held_for_review(conn, after=after, limit=limit)
        return Page(
            items=[ReviewOut.of(row) for row in rows],
            next_cursor=encode_cursor(str(rows[-1]["id"])) if len(rows) == limit else None,
        )

    @post(
        "/{intent_id:uuid}/decision",
        operation_id="decidePaymentReview",
        summary="Approve (the customer may confirm) or reject (the intent is canceled)",
        status_code=200,
    )
    async def decide(
        self,
        intent_id: FromPath[uuid.UUID],
        data: JSONBody[ReviewDecisionIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> IntentOut:
        async with configured_gateways(conn, settings) as gateways:
            row = await service.decide_review(
                conn,
                gateways,
                intent_id,
                approve=data.decision == "approve",
                reviewer=f"user:{principal.user_id}",
            )
        return IntentOut.of(row)


class DisputeAdminController(Controller):
    path = "/v1/admin/disputes"
    tags = ["payments", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN, Role.SUPPORT)]  # noqa: RUF012

    @post("/", operation_id="openDispute", summary="Open a dispute (holds the party's payouts)")
    async def open(
        self,
        data: JSONBody[DisputeIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> DisputeOut:
        row = await disputes.open_dispute(
            conn,
            party_kind=data.party_kind,
            party_id=data.party_id,
            reason=data.reason,
            intent_id=data.intent_id,
            actor=f"user:{principal.user_id}",
        )
        return DisputeOut.of(row)

    @post(
        "/{dispute_id:uuid}/resolve",
        operation_id="resolveDispute",
        summary="Resolve a dispute (releases the payout hold)",
        status_code=200,
    )
    async def resolve(
        self,
        dispute_id: FromPath[uuid.UUID],
        data: JSONBody[DisputeResolveIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> DisputeOut:
        row = await disputes.resolve_dispute(
            conn, dispute_id, resolution=data.resolution, actor=f"user:{principal.user_id}"
        )
        return DisputeOut.of(row)


class PayoutAdminController(Controller):
    path = "/v1/admin/payouts"
    tags = ["payments", "admin"]  # noqa: RUF012
    guards = [requires_role(Role.ADMIN)]  # noqa: RUF012

    @post(
        "/batches",
        operation_id="runPayoutBatch",
        summary="Run the payout batch of a period (a second run of the period returns the first)",
        status_code=200,
    )
    async def run(
        self,
        data: JSONBody[PayoutRunIn],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> PayoutRunOut:
        result = await payouts.run_payouts(
            conn,
            currency=data.currency,
            period_end=data.period_end or payouts.default_period_end(),
            min_payout_minor=settings.payout_min_minor
            if data.min_payout_minor is None
            else data.min_payout_minor,
            actor=f"user:{principal.user_id}",
        )
        batch, rows = await payouts.batch_with_payouts(conn, result.batch["id"])
        return PayoutRunOut(
            batch=PayoutBatchOut.of(batch, rows),
            created=result.created,
            held=result.held,
            below_minimum=result.below_minimum,
        )

    @get("/batches", operation_id="listPayoutBatches", summary="Payout batches, newest period first")
    async def list_batches(
        self, conn: NamedDependency[Connection], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> Page[PayoutBatchSummary]:
        after = None if cursor is None else _batch_cursor(cursor)
        rows = await payouts.list_batches(conn, after=after, limit=limit)
        last = rows[-1] if rows else None
        return Page(
            items=[PayoutBatchSummary.of(row) for row in rows],
            next_cursor=encode_cursor(last["period_end"].isoformat(), last["currency"])
            if last is not None and len(rows) == limit
            else None,
        )

    @get("/batches/{batch_id:uuid}", operation_id="getPayoutBatch", summary="A payout batch and its payouts")
    async def read(self, batch_id: FromPath[uuid.UUID], conn: NamedDependency[Connection]) -> PayoutBatchOut:
        batch, rows = await payouts.batch_with_payouts(conn, batch_id)
        return PayoutBatchOut.of(batch, rows)

    @get(
        "/batches/{batch_id:uuid}/statements/{party_kind:str}/{party_id:uuid}",
        operation_id="getPayoutStatement",
        summary="A merchant's or courier's statement for the batch's period, as CSV",
        media_type="text/csv",
    )
    async def statement(
        self,
        batch_id: FromPath[uuid.UUID],
        party_kind: FromPath[str],
        party_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
    ) -> Response[str]:
        body = await statement_csv(conn, batch_id, party_kind, party_id)
        filename = f"statement-{party_kind}-{party_id}-{batch_id}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
