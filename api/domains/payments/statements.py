"""A party's payout statement for one batch, as CSV (the standard library's ``csv`` module).

The statement is the party's payable account over the batch's period: the
opening balance (after the previous batch), every entry posted in the period
(captures credit it, refunds debit it), the payout of this batch if there was
one, and the closing balance (what stays on the payable: held, under the
minimum, or posted after the period end is not on it). Amounts are signed
integer minor units from the party's side: + owed to the party, - taken off.
"""

from __future__ import annotations

import csv
import io
import uuid

from api.domains.payments import payouts_repository as repository
from api.domains.payments.payouts import batch_with_payouts, payable_account
from nearx.db import Connection

COLUMNS = ("posted_at", "kind", "reference_type", "reference_id", "amount_minor", "balance_minor", "currency")


async def statement_csv(conn: Connection, batch_id: uuid.UUID, party_kind: str, party_id: uuid.UUID) -> str:
    batch, _ = await batch_with_payouts(conn, batch_id)
    currency = batch["currency"]
    account = payable_account(party_kind, party_id, currency)
    payout = await repository.payout_for(conn, batch_id, party_kind, party_id)
    after = await repository.previous_period_end(conn, currency, batch["period_end"])
    opening, lines = await repository.statement_lines(
        conn,
        account_key=account.key,
        after=after,
        period_end=batch["period_end"],
        payout_entry_id=None if payout is None else payout["entry_id"],
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerow(["", "opening_balance", "", "", "", opening, currency])
    balance = opening
    for line in lines:
        balance += int(line["amount_minor"])
        writer.writerow(
            [
                line["created_at"].isoformat(),
                line["kind"],
                line["reference_type"] or "",
                line["reference_id"] or "",
                line["amount_minor"],
                balance,
                currency,
            ]
        )
    writer.writerow([batch["period_end"].isoformat(), "closing_balance", "", "", "", balance, currency])
    return out.getvalue()
