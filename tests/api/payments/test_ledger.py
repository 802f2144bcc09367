"""The ledger's guarantees hold in the database itself, not only in Python."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors as pg_errors

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from nearx.db import Connection

WALLET = AccountRef(AccountKind.CUSTOMER_WALLET, "NPR", uuid.UUID(int=1))
CLEARING = AccountRef(AccountKind.GATEWAY_CLEARING, "NPR", "sandbox")


async def test_a_balanced_entry_posts_and_balances_follow(conn: Connection) -> None:
    async with conn.transaction():
        await ledger.post(
            conn,
            kind="wallet.topped_up",
            business_key="k1",
            legs=[ledger.debit(CLEARING, 500), ledger.credit(WALLET, 500)],
        )
    assert await ledger.balance(conn, WALLET) == 500
    assert await ledger.balance(conn, CLEARING) == 500
    assert await (await conn.execute("SELECT * FROM ledger_verify()")).fetchall() == []


async def test_the_same_business_key_never_posts_twice(conn: Connection) -> None:
    for _ in range(2):
        async with conn.transaction():
            await ledger.post(
                conn,
                kind="wallet.topped_up",
                business_key="once",
                legs=[ledger.debit(CLEARING, 500), ledger.credit(WALLET, 500)],
            )
    assert await ledger.balance(conn, WALLET) == 500


def test_python_refuses_an_unbalanced_entry() -> None:
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.net_legs([ledger.debit(CLEARING, 500), ledger.credit(WALLET, 499)])


async def test_the_database_refuses_an_unbalanced_entry_at_commit(conn: Connection) -> None:
    async with conn.transaction():
        ids = [await _account(conn, ref) for ref in (CLEARING, WALLET)]
    with pytest.raises(pg_errors.CheckViolation, match="does not balance"):  # noqa: PT012
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_entries (id, kind, business_key) VALUES (%s, 'x.y', 'bad')",
                (uuid.UUID(int=9),),
            )
            await conn.execute(
                "INSERT INTO ledger_postings (entry_id, account_id, currency, amount_minor) VALUES "
                "(%s, %s, 'NPR', 100), (%s, %s, 'NPR', -99)",
                (uuid.UUID(int=9), ids[0], uuid.UUID(int=9), ids[1]),
            )
    assert (await (await conn.execute("SELECT count(*) AS n FROM ledger_postings")).fetchone() or {})[
        "n"
    ] == 0


async def test_the_database_refuses_a_posting_in_another_currency_than_its_account(conn: Connection) -> None:
    async with conn.transaction():
        account = await _account(conn, WALLET)
    with pytest.raises(pg_errors.ForeignKeyViolation):  # noqa: PT012
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_entries (id, kind, business_key) VALUES (%s, 'x.y', 'cur')",
                (uuid.UUID(int=8),),
            )
            await conn.execute(
                "INSERT INTO ledger_postings (entry_id, account_id, currency, amount_minor) "
                "VALUES (%s, %s, 'INR', 5)",
                (uuid.UUID(int=8), account),
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_minor = amount_minor * 2",
        "DELETE FROM ledger_postings",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_postings CASCADE",
        "UPDATE ledger_balances SET balance_minor = 10",
    ],
)
async def test_journal_and_balances_cannot_be_edited(conn: Connection, statement: str) -> None:
    async with conn.transaction():
        await ledger.post(
            conn,
            kind="wallet.topped_up",
            business_key="k",
            legs=[ledger.debit(CLEARING, 500), ledger.credit(WALLET, 500)],
        )
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        await conn.execute(statement)
    assert await ledger.balance(conn, WALLET) == 500


async def test_a_wallet_cannot_go_negative(conn: Connection) -> None:
    with pytest.raises(ledger.InsufficientBalance):
        async with conn.transaction():
            await ledger.post(
                conn,
                kind="wallet.spent",
                business_key="neg",
                legs=[ledger.debit(WALLET, 1), ledger.credit(CLEARING, 1)],
            )
    assert await ledger.balance(conn, WALLET) == 0


async def _account(conn: Connection, ref: AccountRef) -> uuid.UUID:
    from api.domains.ledger import repository

    return await repository.ensure_account(conn, ref)
