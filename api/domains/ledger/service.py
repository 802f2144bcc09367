"""Posting balanced journal entries.

Python checks the balance before writing (a clear error for the caller) and
the database checks it again at commit (the guarantee). Legs are netted per
account and written in account-id order, so concurrent entries lock the
running-balance rows in one global order and cannot deadlock each other.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import errors as pg_errors

from api.domains.ledger import repository
from api.domains.ledger.accounts import AccountRef
from nearx.db import Connection


class UnbalancedEntry(ValueError):
    """The legs of an entry do not sum to zero in some currency."""


class InsufficientBalance(Exception):
    """A never-negative account (a wallet or a hold) would go below zero."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry: + debits, - credits the account, in its currency's minor units."""

    account: AccountRef
    amount_minor: int


def debit(account: AccountRef, amount_minor: int) -> Leg:
    return Leg(account, amount_minor)


def credit(account: AccountRef, amount_minor: int) -> Leg:
    return Leg(account, -amount_minor)


def net_legs(legs: Iterable[Leg]) -> dict[AccountRef, int]:
    """Sum legs per account, drop zeros, and check the entry balances per currency."""
    netted: dict[AccountRef, int] = defaultdict(int)
    per_currency: dict[str, int] = defaultdict(int)
    for leg in legs:
        netted[leg.account] += leg.amount_minor
        per_currency[leg.account.currency] += leg.amount_minor
    unbalanced = {cur: total for cur, total in per_currency.items() if total}
    if unbalanced:
        raise UnbalancedEntry(f"entry does not balance: {unbalanced}")
    return {account: amount for account, amount in netted.items() if amount}


async def post(
    conn: Connection,
    *,
    kind: str,
    business_key: str,
    legs: Iterable[Leg],
    reference_type: str | None = None,
    reference_id: uuid.UUID | None = None,
    memo: str | None = None,
) -> uuid.UUID | None:
    """Post one balanced entry inside the caller's transaction; None if ``business_key`` already posted.

    Raises :class:`InsufficientBalance` when a wallet or hold would go negative;
    the caller's transaction must then roll back (the database aborted it).
    """
    netted = net_legs(legs)
    if not netted:
        return None
    resolved = [
        (await repository.ensure_account(conn, account), account.currency, amount)
        for account, amount in netted.items()
    ]
    resolved.sort(key=lambda posting: posting[0])
    try:
        return await repository.insert_entry(
            conn,
            kind=kind,
            business_key=business_key,
            reference_type=reference_type,
            reference_id=reference_id,
            memo=memo,
            postings=resolved,
        )
    except pg_errors.CheckViolation as exc:
        if exc.diag.constraint_name == "ledger_balance_not_negative":
            raise InsufficientBalance("the balance is not sufficient") from exc
        raise


async def balance(conn: Connection, account: AccountRef) -> int:
    """The account's balance in its normal orientation (a wallet's spendable amount)."""
    return await repository.balance(conn, account.key)
