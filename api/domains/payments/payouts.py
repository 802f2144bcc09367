"""Payouts: periodic settlement batches that pay merchants and couriers what the ledger owes them.

A run settles one period per currency: every merchant and courier payable is
due what it earned from entries posted before the period end, minus what
earlier payouts already took. Each party due at least the minimum payout, and
without an open hold (a dispute), gets one payout row and one balanced entry
(payable debited, payouts clearing credited, under the business key
``payout:<batch>:<party>``). Smaller or held amounts simply stay on the
payable and are due in a later period. The batch is unique per (currency,
period end), and runs of one currency are serialised by an advisory lock, so
running a period again returns the batch it already made and pays nothing twice.

Payouts are ``scheduled``: sending the bank transfers (and debiting payouts
clearing against the bank) is the treasury's step, outside this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import payouts_repository as repository
from api.errors import InvalidInput, NotFound
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.ids import new_id
from nearx.money import UnknownCurrency, validate_currency
from nearx.outbox import append_event

Row = dict[str, Any]
PARTY_KINDS = ("merchant", "courier")
_PAYABLE = {"merchant": AccountKind.MERCHANT_PAYABLE, "courier": AccountKind.COURIER_PAYABLE}


def payable_account(party_kind: str, party_id: uuid.UUID, currency: str) -> AccountRef:
    """The ledger account holding what the platform owes a merchant or courier."""
    try:
        kind = _PAYABLE[party_kind]
    except KeyError:
        raise InvalidInput(f"party_kind must be one of {', '.join(PARTY_KINDS)}") from None
    return AccountRef(kind, currency, party_id)


def default_period_end(now: datetime | None = None) -> datetime:
    """Daily settlement: the period that ended at the start of the current UTC day."""
    return (now or utc_now()).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class PayoutRun:
    """What a run did: the batch, and who was paid, held or carried over below the minimum."""

    batch: Row
    created: bool
    """False when the period had already been run (the existing batch is returned)."""
    paid: int
    total_minor: int
    held: int
    below_minimum: int


async def run_payouts(
    conn: Connection,
    *,
    currency: str,
    period_end: datetime,
    min_payout_minor: int,
    actor: str,
) -> PayoutRun:
    """Settle everything posted before ``period_end`` in ``currency``, once per period."""
    try:
        validate_currency(currency)
    except UnknownCurrency as exc:
        raise InvalidInput(str(exc)) from exc
    if period_end.tzinfo is None:
        raise InvalidInput("period_end must carry a timezone")
    if period_end > utc_now():
        raise InvalidInput("a period can be paid out only after it has ended")
    if min_payout_minor < 0:
        raise InvalidInput("the minimum payout must not be negative")
    async with conn.transaction():
        await repository.lock_payout_runs(conn, currency)
        existing = await repository.find_batch(conn, currency, period_end)
        if existing is not None:
            payouts = await repository.batch_payouts(conn, existing["id"])
            return PayoutRun(
                existing, False, len(payouts), sum(int(p["amount_minor"]) for p in payouts), 0, 0
            )
        batch = await repository.insert_batch(conn, new_id(), currency, period_end, min_payout_minor)
        paid = total = held = below = 0
        for due in await repository.payable_dues(conn, currency, period_end):
            amount = int(due["due_minor"])
            if amount <= 0:
                continue
            if due["held"]:
                held += 1
                continue
            if amount < min_payout_minor:
                below += 1
                continue
            await _pay(conn, batch, repository.PARTY_OF_ACCOUNT[due["kind"]], due["owner_id"], amount)
            paid += 1
            total += amount
        await append_event(
            conn,
            event_type="payout_batch.created",
            aggregate_type="payout_batch",
            aggregate_id=batch["id"],
            payload={
                "id": str(batch["id"]),
                "currency": currency,
                "period_end": period_end.isoformat(),
                "payouts": paid,
                "total_minor": total,
                "held": held,
                "below_minimum": below,
                "by": actor,
            },
        )
    return PayoutRun(batch, True, paid, total, held, below)


async def _pay(conn: Connection, batch: Row, party_kind: str, party_id: uuid.UUID, amount_minor: int) -> None:
    currency = str(batch["currency"])
    batch_id: uuid.UUID = batch["id"]
    payout_id = new_id()
    entry_id = await ledger.post(
        conn,
        kind=repository.PAYOUT_ENTRY_KIND,
        business_key=f"payout:{batch_id}:{party_kind}:{party_id}",
        legs=[
            ledger.debit(payable_account(party_kind, party_id, currency), amount_minor),
            ledger.credit(AccountRef(AccountKind.PAYOUTS_CLEARING, currency), amount_minor),
        ],
        reference_type="payout",
        reference_id=payout_id,
        memo=f"payout batch {batch_id}",
    )
    assert entry_id is not None, "a new batch's business keys cannot have posted before"
    await repository.insert_payout(
        conn,
        payout_id=payout_id,
        batch_id=batch_id,
        party_kind=party_kind,
        party_id=party_id,
        currency=currency,
        amount_minor=amount_minor,
        entry_id=entry_id,
    )


async def batch_with_payouts(conn: Connection, batch_id: uuid.UUID) -> tuple[Row, list[Row]]:
    batch = await repository.get_batch(conn, batch_id)
    if batch is None:
        raise NotFound("no such payout batch")
    return batch, await repository.batch_payouts(conn, batch_id)


async def list_batches(conn: Connection, *, after: tuple[datetime, str] | None, limit: int) -> list[Row]:
    return await repository.list_batches(conn, after=after, limit=limit)
