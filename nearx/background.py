"""Periodic jobs for the lifetime of a server: ``async with every(30, sweep, name="orders-sweep"):``.

A run that raises is logged and the next one comes on schedule, so one bad
round (a database hiccup) never ends the loop; leaving the block stops the
loop after the run in progress, never in the middle of one. Several server
processes may run the same job: the jobs themselves must be safe to run
concurrently (ours re-check each row under its lock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


async def _loop(job: Job, interval_s: float, stop: asyncio.Event, name: str) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("background job %s failed; it runs again in %s s", name, interval_s)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


@asynccontextmanager
async def every(interval_s: float, job: Job, *, name: str) -> AsyncIterator[None]:
    """Run ``job`` now and then every ``interval_s`` seconds until the block ends; 0 or less disables it."""
    if interval_s <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(job, interval_s, stop, name), name=name)
    try:
        yield
    finally:
        stop.set()
        await task
