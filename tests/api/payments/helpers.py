"""Shared arrangements for payment tests: gateways on a connection, ledger invariants."""

from __future__ import annotations

import uuid
from typing import Any

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments.gateways.base import Gateway
from api.domains.payments.gateways.registry import default_gateways
from nearx.db import Connection


def gateways(conn: Connection) -> dict[str, Gateway]:
    return default_gateways(conn)


async def fund_wallet(conn: Connection, user: uuid.UUID, amount_minor: int, currency: str = "NPR") -> None:
    """Credit a wallet as a captured top-up would (through the gateway clearing account)."""
    async with conn.transaction():
        await ledger.post(
            conn,
            kind="wallet.topped_up",
            business_key=f"test.fund:{uuid.uuid4()}",
            legs=[
                ledger.debit(
                    AccountRef(AccountKind.GATEWAY_CLEARING, currency, "test_funding"), amount_minor
                ),
                ledger.credit(AccountRef(AccountKind.CUSTOMER_WALLET, currency, user), amount_minor),
            ],
        )


async def scalar(conn: Connection, sql: str, *params: Any) -> Any:
    row = await (await conn.execute(sql, params)).fetchone()
    assert row is not None
    return next(iter(row.values()))


async def assert_ledger_invariants(conn: Connection) -> None:
    """Every entry balances, all accounts sum to zero per currency, balances match postings."""
    assert await (await conn.execute("SELECT * FROM ledger_verify()")).fetchall() == []
    unbalanced_entries = await (
        await conn.execute(
            "SELECT entry_id, currency FROM ledger_postings "
            "GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0"
        )
    ).fetchall()
    assert unbalanced_entries == []
    totals = await (
        await conn.execute("SELECT currency, sum(amount_minor) AS t FROM ledger_postings GROUP BY currency")
    ).fetchall()
    assert all(row["t"] == 0 for row in totals), totals
    negative = await (
        await conn.execute(
            "SELECT a.key, b.balance_minor FROM ledger_balances b "
            "JOIN ledger_accounts a ON a.id = b.account_id "
            "WHERE a.kind IN ('customer_wallet', 'wallet_hold') AND b.balance_minor < 0"
        )
    ).fetchall()
    assert negative == []
    # captured minus refunded per provider equals what its clearing account holds
    mismatched = await (
        await conn.execute(
            """
            WITH clearing AS (
                SELECT a.key, b.balance_minor
                  FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
            )
            SELECT i.provider, i.currency, sum(i.amount_captured - i.amount_refunded) AS expected
              FROM payment_intents i WHERE i.provider <> 'wallet'
             GROUP BY i.provider, i.currency
            HAVING sum(i.amount_captured - i.amount_refunded) <> COALESCE(
                (SELECT balance_minor FROM clearing
                  WHERE key = 'gateway_clearing:' || i.provider || ':' || i.currency), 0)
            """
        )
    ).fetchall()
    assert mismatched == []
