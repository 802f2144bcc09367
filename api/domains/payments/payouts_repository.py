"""All SQL of payouts, payout holds and disputes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from nearx.db import Connection

Row = dict[str, Any]

PAYOUT_ENTRY_KIND = "payout.scheduled"
"""The ledger entry kind of a payout (payable debited, payouts clearing credited)."""

PARTY_OF_ACCOUNT = {"merchant_payable": "merchant", "courier_payable": "courier"}


async def lock_payout_runs(conn: Connection, currency: str) -> None:
    """Serialise payout runs of one currency (transaction-scoped advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('nearx.payouts:' || %s))", (currency,))


async def find_batch(conn: Connection, currency: str, period_end: datetime) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payout_batches WHERE currency = %s AND period_end = %s", (currency, period_end)
        )
    ).fetchone()


async def get_batch(conn: Connection, batch_id: uuid.UUID) -> Row | None:
    return await (await conn.execute("SELECT * FROM payout_batches WHERE id = %s", (batch_id,))).fetchone()


async def insert_batch(
    conn: Connection, batch_id: uuid.UUID, currency: str, period_end: datetime, min_payout_minor: int
) -> Row:
    row = await (
        await conn.execute(
            "INSERT INTO payout_batches (id, currency, period_end, min_payout_minor) "
            "VALUES (%s, %s, %s, %s) RETURNING *",
            (batch_id, currency, period_end, min_payout_minor),
        )
    ).fetchone()
    assert row is not None
    return row


async def payable_dues(conn: Connection, currency: str, period_end: datetime) -> list[Row]:
    """Per merchant/courier payable: what was earned before ``period_end`` minus what was paid out.

    Capped at the running balance, so a refund posted after the period end can
    never make a payout push the payable below zero. Parties with an open
    payout hold are flagged, not dropped, so the run can report them.
    """
    return list(
        await (
            await conn.execute(
                """
                WITH sums AS (
                    SELECT a.id AS account_id, a.kind, a.owner_id,
                           -COALESCE(sum(p.amount_minor) FILTER (
                               WHERE e.kind <> %(payout)s AND e.created_at < %(period_end)s), 0) AS earned,
                           COALESCE(sum(p.amount_minor) FILTER (WHERE e.kind = %(payout)s), 0) AS paid
                      FROM ledger_accounts a
                      JOIN ledger_postings p ON p.account_id = a.id
                      JOIN ledger_entries e ON e.id = p.entry_id
                     WHERE a.kind IN ('merchant_payable', 'courier_payable') AND a.currency = %(currency)s
                       AND a.owner_id IS NOT NULL
                     GROUP BY a.id, a.kind, a.owner_id
                )
                SELECT s.account_id, s.kind, s.owner_id,
                       LEAST(s.earned - s.paid, b.balance_minor) AS due_minor,
                       EXISTS (SELECT 1 FROM payout_holds h
                                WHERE h.party_kind = CASE s.kind WHEN 'merchant_payable' THEN 'merchant'
                                                                 ELSE 'courier' END
                                  AND h.party_id = s.owner_id AND h.released_at IS NULL) AS held
                  FROM sums s JOIN ledger_balances b ON b.account_id = s.account_id
                 ORDER BY s.kind, s.owner_id
                """,
                {"payout": PAYOUT_ENTRY_KIND, "period_end": period_end, "currency": currency},
            )
        ).fetchall()
    )


async def insert_payout(
    conn: Connection,
    *,
    payout_id: uuid.UUID,
    batch_id: uuid.UUID,
    party_kind: str,
    party_id: uuid.UUID,
    currency: str,
    amount_minor: int,
    entry_id: uuid.UUID,
) -> None:
    await conn.execute(
        "INSERT INTO payouts (id, batch_id, party_kind, party_id, currency, amount_minor, entry_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (payout_id, batch_id, party_kind, party_id, currency, amount_minor, entry_id),
    )


async def batch_payouts(conn: Connection, batch_id: uuid.UUID) -> list[Row]:
    return list(
        await (
            await conn.execute(
                "SELECT * FROM payouts WHERE batch_id = %s ORDER BY party_kind, party_id", (batch_id,)
            )
        ).fetchall()
    )


async def list_batches(conn: Connection, *, after: tuple[datetime, str] | None, limit: int) -> list[Row]:
    """Newest period first (keyset on period end and currency), with each batch's count and total."""
    return list(
        await (
            await conn.execute(
                """
                SELECT b.*, count(p.id) AS payouts, COALESCE(sum(p.amount_minor), 0)::bigint AS total_minor
                  FROM payout_batches b LEFT JOIN payouts p ON p.batch_id = b.id
                 WHERE %(end)s::timestamptz IS NULL OR (b.period_end, b.currency) < (%(end)s, %(cur)s)
                 GROUP BY b.id ORDER BY b.period_end DESC, b.currency DESC LIMIT %(limit)s
                """,
                {
                    "end": None if after is None else after[0],
                    "cur": None if after is None else after[1],
                    "limit": limit,
                },
            )
        ).fetchall()
    )


async def previous_period_end(conn: Connection, currency: str, period_end: datetime) -> datetime | None:
    row = await (
        await conn.execute(
            "SELECT max(period_end) AS previous FROM payout_batches WHERE currency = %s AND period_end < %s",
            (currency, period_end),
        )
    ).fetchone()
    return None if row is None else row["previous"]


async def statement_lines(
    conn: Connection,
    *,
    account_key: str,
    after: datetime | None,
    period_end: datetime,
    payout_entry_id: uuid.UUID | None,
) -> tuple[int, list[Row]]:
    """(opening balance, lines) of a payable over one period, in its credit-normal orientation.

    Lines are the entries posted in ``[after, period_end)`` other than payouts,
    then this period's payout entry (posted when the batch ran).
    """
    params = {
        "key": account_key,
        "after": after,
        "period_end": period_end,
        "payout": PAYOUT_ENTRY_KIND,
        "payout_entry": payout_entry_id,
    }
    opening = await (
        await conn.execute(
            """
            SELECT -COALESCE(sum(p.amount_minor), 0) AS opening
              FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
              JOIN ledger_entries e ON e.id = p.entry_id
             WHERE a.key = %(key)s AND %(after)s::timestamptz IS NOT NULL
               AND ((e.kind <> %(payout)s AND e.created_at < %(after)s)
                    OR (e.kind = %(payout)s AND e.id IN (
                        SELECT entry_id FROM payouts po JOIN payout_batches b ON b.id = po.batch_id
                         WHERE b.period_end <= %(after)s)))
            """,
            params,
        )
    ).fetchone()
    assert opening is not None
    lines = await (
        await conn.execute(
            """
            SELECT e.created_at, e.kind, e.reference_type, e.reference_id, -p.amount_minor AS amount_minor
              FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
              JOIN ledger_entries e ON e.id = p.entry_id
             WHERE a.key = %(key)s
               AND ((e.kind <> %(payout)s AND e.created_at < %(period_end)s
                     AND (%(after)s::timestamptz IS NULL OR e.created_at >= %(after)s))
                    OR e.id = %(payout_entry)s)
             ORDER BY e.kind = %(payout)s, e.created_at, p.id
            """,
            params,
        )
    ).fetchall()
    return int(opening["opening"]), list(lines)


async def payout_for(
    conn: Connection, batch_id: uuid.UUID, party_kind: str, party_id: uuid.UUID
) -> Row | None:
    return await (
        await conn.execute(
            "SELECT * FROM payouts WHERE batch_id = %s AND party_kind = %s AND party_id = %s",
            (batch_id, party_kind, party_id),
        )
    ).fetchone()


async def insert_hold(
    conn: Connection, hold_id: uuid.UUID, party_kind: str, party_id: uuid.UUID, reason: str
) -> None:
    await conn.execute(
        "INSERT INTO payout_holds (id, party_kind, party_id, reason) VALUES (%s, %s, %s, %s)",
        (hold_id, party_kind, party_id, reason),
    )


async def release_hold(conn: Connection, hold_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE payout_holds SET released_at = now() WHERE id = %s AND released_at IS NULL", (hold_id,)
    )


async def insert_dispute(conn: Connection, values: dict[str, Any]) -> Row:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = await (
        await conn.execute(
            f"INSERT INTO payment_disputes ({columns}) VALUES ({placeholders}) RETURNING *",
            tuple(values.values()),
        )
    ).fetchone()
    assert row is not None
    return row


async def get_dispute(conn: Connection, dispute_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM payment_disputes WHERE id = %s" + (" FOR UPDATE" if lock else "")
    return await (await conn.execute(sql, (dispute_id,))).fetchone()


async def dispute_move_allowed(conn: Connection, from_status: str, to_status: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT 1 FROM payment_dispute_transitions WHERE from_status = %s AND to_status = %s",
            (from_status, to_status),
        )
    ).fetchone()
    return row is not None


async def resolve_dispute(conn: Connection, dispute_id: uuid.UUID, resolution: str, actor: str) -> Row:
    row = await (
        await conn.execute(
            "UPDATE payment_disputes SET status = 'resolved', resolution = %s, resolved_by = %s, "
            "resolved_at = now() WHERE id = %s RETURNING *",
            (resolution, actor, dispute_id),
        )
    ).fetchone()
    assert row is not None
    return row


async def record_dispute_history(
    conn: Connection,
    dispute_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO payment_dispute_history (dispute_id, from_status, to_status, actor, note) "
        "VALUES (%s, %s, %s, %s, %s)",
        (dispute_id, from_status, to_status, actor, note),
    )
