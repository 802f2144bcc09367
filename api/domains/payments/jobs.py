"""Background work run by the CLI: reconciliation against the providers."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from api.domains.payments import service
from api.domains.payments.gateways.registry import default_gateways


async def reconcile_database(url: str, *, older_than: timedelta) -> service.ReconcileReport:
    """One reconciliation pass over the database at ``url`` with the configured gateways."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await service.reconcile(conn, default_gateways(conn), older_than=older_than)
