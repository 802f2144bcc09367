"""Sliding one-hour request limits counted in PostgreSQL.

The caller takes ``pg_advisory_xact_lock`` on the limit keys (repository
``lock_keys``), counts the rows of the window and calls :func:`enforce`, all in
the transaction that will insert the new row, so the limits hold across API
workers and a refused request writes nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from api.domains.identity.repository import Row
from api.errors import TooManyRequests

WINDOW = timedelta(hours=1)


def enforce(window: Row, limit: int, now: datetime, what: str) -> None:
    """Raise 429 with ``Retry-After`` (when the oldest counted row leaves the window) at the limit."""
    if window["n"] >= limit:
        retry_after = max(1, math.ceil((window["oldest"] + WINDOW - now).total_seconds()))
        raise TooManyRequests(
            f"too many requests for {what}; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
