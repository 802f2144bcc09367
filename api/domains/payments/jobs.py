"""Background work run by the CLI: reconciliation against the providers, payout runs."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from api.domains.payments import marketplace, payouts, service
from api.domains.payments.gateways.registry import default_gateways


async def reconcile_database(url: str, *, older_than: timedelta) -> service.ReconcileReport:
    """One reconciliation pass over the database at ``url`` with the configured gateways."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await service.reconcile(conn, default_gateways(conn), older_than=older_than)


async def capture_orders_database(url: str) -> marketplace.OrderCaptureReport:
    """Capture the payments of orders whose merchant orders are all final (split settlement)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await marketplace.capture_settled_orders(conn, default_gateways(conn))


async def run_payouts_database(
    url: str, *, currency: str, period_end: datetime, min_payout_minor: int
) -> payouts.PayoutRun:
    """One payout run (``nearx payments payouts run``) over the database at ``url``."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await payouts.run_payouts(
            conn, currency=currency, period_end=period_end, min_payout_minor=min_payout_minor, actor="cli"
        )
