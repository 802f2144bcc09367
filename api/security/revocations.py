"""This worker's list of recently revoked sessions, so bearer authentication needs no database
round trip per request.

Why a list and not a lookup: the session check was one pool checkout and one query on every
authenticated request (~6 % of a worker's time on ``/v1/match``), while revocations are rare.
An access token lives at most ``access_token_ttl_s``, so a session revoked longer ago than that
has no access token left that verifies: the list only needs the revocations of that window
(plus :data:`SLACK`), which stays small, and older entries are pruned.

How it stays current: it is loaded at start-up, then :func:`running_revocations` polls
``auth_sessions`` for newer revocations every ``NEARX_REVOCATION_POLL_S``; revocations made by
this process are added by the identity service right after their commit (:meth:`note`). So a
revocation takes effect here at once when this worker made it, and within one poll interval
when another worker (or a script) did. A poll that fails keeps the last list and is logged (by
:func:`nearx.background.every`); once the list is older than :data:`STALE_AFTER_POLLS`
intervals, :meth:`RevocationList.is_current` turns false and the middleware asks the database
on every request again, so a broken poller never stretches the bound past that.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from cachetools import TLRUCache

from api.domains.identity.repository import revocations_since
from nearx.background import every
from nearx.clock import utc_now
from nearx.db import Connection, Pool
from nearx.settings import Settings

SLACK = timedelta(seconds=30)
"""How far a revocation's ``revoked_at`` may lag the order in which polls see it.

``revoked_at`` is stamped by the revoking worker's clock before its transaction commits, so a
revocation can become visible after a later-stamped one, or carry a clock a little behind ours.
Each poll re-reads revocations from this long before the newest one seen, and entries are kept
this long past the token lifetime, so such a lag of up to 30 s is neither missed nor pruned early.
"""

STALE_AFTER_POLLS = 5
"""A list not refreshed for this many poll intervals is not trusted (the database is asked)."""


class RevocationList:
    """Session ids revoked within the access-token lifetime, with the time of the last refresh.

    Only sessions known AND revoked are listed, as the per-request query had it: a token whose
    session has no row still authenticates by its signature. ``clock`` (monotonic seconds) dates
    the refreshes and ``wall`` the revocations; both are injectable so tests need not sleep.
    Not thread-safe: the event loop is the one caller.
    """

    def __init__(
        self,
        *,
        token_ttl: timedelta,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.window = token_ttl + SLACK
        self.max_age_s = STALE_AFTER_POLLS * poll_s
        self._clock = clock
        self._wall = wall
        window_s = self.window.total_seconds()
        # Never evicted by size (an evicted revocation would let its tokens back in): only by age.
        self._revoked: TLRUCache[uuid.UUID, float] = TLRUCache(
            maxsize=math.inf,
            ttu=lambda _session_id, revoked_at, _now: revoked_at + window_s,
            timer=lambda: wall().timestamp(),
        )
        self._newest: datetime | None = None
        self._refreshed_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RevocationList:
        return cls(
            token_ttl=timedelta(seconds=settings.access_token_ttl_s), poll_s=settings.revocation_poll_s
        )

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def is_current(self) -> bool:
        """True when the last successful refresh started less than ``max_age_s`` ago."""
        return self._refreshed_at is not None and self._clock() - self._refreshed_at < self.max_age_s

    def note(self, session_ids: Iterable[uuid.UUID], revoked_at: datetime) -> None:
        """Add revocations this process just committed, so they take effect before the next poll."""
        for session_id in session_ids:
            self._revoked[session_id] = revoked_at.timestamp()

    async def refresh(self, conn: Connection) -> int:
        """Add the revocations committed since the last refresh and prune expired ones; returns
        how many rows were read. The refresh is dated from its start: what commits during the
        query is only guaranteed to be seen by the next one."""
        started, now = self._clock(), self._wall()
        oldest_relevant = now - self.window
        since = oldest_relevant if self._newest is None else max(oldest_relevant, self._newest - SLACK)
        rows = await revocations_since(conn, since)
        for row in rows:
            revoked_at: datetime = row["revoked_at"]
            self._revoked[row["id"]] = revoked_at.timestamp()
            # a worker whose clock runs ahead must not move the cursor past what ours has reached
            seen = min(revoked_at, now)
            if self._newest is None or seen > self._newest:
                self._newest = seen
        self._revoked.expire()
        self._refreshed_at = started
        return len(rows)


@asynccontextmanager
async def running_revocations(pool: Pool, settings: Settings) -> AsyncIterator[RevocationList | None]:
    """This worker's list, loaded now and polled while the block runs; ``None`` when
    ``NEARX_REVOCATION_POLL_S`` is 0 (every request then asks the database)."""
    if settings.revocation_poll_s <= 0:
        yield None
        return
    revocations = RevocationList.from_settings(settings)

    async def poll() -> int:
        async with pool.connection() as conn:
            return await revocations.refresh(conn)

    # Loaded before the first request, and a failure here fails start-up rather than leaving the
    # worker on the per-request fallback; the loop then polls at once (one extra query) and on.
    await poll()
    async with every(settings.revocation_poll_s, poll, name="session-revocations"):
        yield revocations
