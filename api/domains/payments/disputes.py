"""Disputes against a merchant or courier: while one is open, their payouts are held.

Opening a dispute opens a ``payout_holds`` row in the same transaction;
resolving it (the only move, ``open → resolved``, listed in
``payment_dispute_transitions``) releases that hold. Payout runs skip a party
with any open hold, so the disputed money stays on the payable until then.
"""

from __future__ import annotations

import uuid
from typing import Any

from api.domains.payments import payouts_repository as repository
from api.domains.payments import repository as payments_repository
from api.domains.payments.payouts import PARTY_KINDS
from api.errors import Conflict, InvalidInput, NotFound
from nearx.db import Connection
from nearx.ids import new_id
from nearx.outbox import append_event

Row = dict[str, Any]


async def open_dispute(
    conn: Connection,
    *,
    party_kind: str,
    party_id: uuid.UUID,
    reason: str,
    actor: str,
    intent_id: uuid.UUID | None = None,
) -> Row:
    if party_kind not in PARTY_KINDS:
        raise InvalidInput(f"party_kind must be one of {', '.join(PARTY_KINDS)}")
    if not reason.strip():
        raise InvalidInput("a dispute needs a reason")
    async with conn.transaction():
        if intent_id is not None and await payments_repository.get_intent(conn, intent_id) is None:
            raise InvalidInput("no such payment intent")
        dispute_id, hold_id = new_id(), new_id()
        await repository.insert_hold(conn, hold_id, party_kind, party_id, f"dispute:{dispute_id}")
        row = await repository.insert_dispute(
            conn,
            {
                "id": dispute_id,
                "intent_id": intent_id,
                "party_kind": party_kind,
                "party_id": party_id,
                "status": "open",
                "reason": reason,
                "hold_id": hold_id,
                "opened_by": actor,
            },
        )
        await repository.record_dispute_history(conn, dispute_id, None, "open", actor, reason)
        await _event(conn, row, actor)
    return row


async def resolve_dispute(conn: Connection, dispute_id: uuid.UUID, *, resolution: str, actor: str) -> Row:
    async with conn.transaction():
        row = await repository.get_dispute(conn, dispute_id, lock=True)
        if row is None:
            raise NotFound("no such dispute")
        if not await repository.dispute_move_allowed(conn, row["status"], "resolved"):
            raise Conflict(f"a dispute cannot go from {row['status']} to resolved", status=row["status"])
        resolved = await repository.resolve_dispute(conn, dispute_id, resolution, actor)
        await repository.release_hold(conn, row["hold_id"])
        await repository.record_dispute_history(
            conn, dispute_id, row["status"], "resolved", actor, resolution
        )
        await _event(conn, resolved, actor)
    return resolved


async def _event(conn: Connection, row: Row, actor: str) -> None:
    await append_event(
        conn,
        event_type=f"dispute.{'opened' if row['status'] == 'open' else 'resolved'}",
        aggregate_type="dispute",
        aggregate_id=row["id"],
        payload={
            "id": str(row["id"]),
            "party_kind": row["party_kind"],
            "party_id": str(row["party_id"]),
            "status": row["status"],
            "by": actor,
        },
    )
