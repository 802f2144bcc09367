"""All SQL of the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from api.domains.ledger.accounts import AccountRef
from nearx.db import Connection
from nearx.ids import new_id


async def ensure_account(conn: Connection, ref: AccountRef) -> uuid.UUID:
    """The account's id, creating it on first use (race-safe through the unique key)."""
    row = await (
        await conn.execute(
            """
            INSERT INTO ledger_accounts (id, key, kind, owner_id, currency, normal_side, allow_negative)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (key) DO NOTHING RETURNING id
            """,
            (
                new_id(),
                ref.key,
                ref.kind.value,
                ref.owner_uuid,
                ref.currency,
                ref.normal_side,
                ref.allow_negative,
            ),
        )
    ).fetchone()
    if row is None:
        row = await (
            await conn.execute("SELECT id FROM ledger_accounts WHERE key = %s", (ref.key,))
        ).fetchone()
    assert row is not None
    account_id: uuid.UUID = row["id"]
    return account_id


async def entry_exists(conn: Connection, business_key: str) -> uuid.UUID | None:
    row = await (
        await conn.execute("SELECT id FROM ledger_entries WHERE business_key = %s", (business_key,))
    ).fetchone()
    return None if row is None else row["id"]


async def insert_entry(
    conn: Connection,
    *,
    kind: str,
    business_key: str,
    reference_type: str | None,
    reference_id: uuid.UUID | None,
    memo: str | None,
    postings: Sequence[tuple[uuid.UUID, str, int]],
) -> uuid.UUID | None:
    """Insert an entry and its postings; None if ``business_key`` already posted (nothing written)."""
    entry_id = new_id()
    row = await (
        await conn.execute(
            """
            INSERT INTO ledger_entries (id, kind, business_key, reference_type, reference_id, memo)
            VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (business_key) DO NOTHING RETURNING id
            """,
            (entry_id, kind, business_key, reference_type, reference_id, memo),
        )
    ).fetchone()
    if row is None:
        return None
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO ledger_postings (entry_id, account_id, currency, amount_minor) "
            "VALUES (%s, %s, %s, %s)",
            [(entry_id, account_id, currency, amount) for account_id, currency, amount in postings],
        )
    return entry_id


async def balance(conn: Connection, key: str) -> int:
    row = await (
        await conn.execute(
            "SELECT b.balance_minor FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id "
            "WHERE a.key = %s",
            (key,),
        )
    ).fetchone()
    return 0 if row is None else int(row["balance_minor"])


async def mismatched_balances(conn: Connection) -> list[dict[str, object]]:
    return list(await (await conn.execute("SELECT * FROM ledger_verify()")).fetchall())


async def unbalanced_totals(conn: Connection) -> list[dict[str, object]]:
    """Currencies whose postings over all accounts do not sum to zero (expect none)."""
    return list(
        await (
            await conn.execute(
                "SELECT currency, sum(amount_minor) AS total FROM ledger_postings "
                "GROUP BY currency HAVING sum(amount_minor) <> 0"
            )
        ).fetchall()
    )
