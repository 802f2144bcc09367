"""Scoring under a latency budget on a small bounded pool: shed load instead of queueing it.

Why not ``asyncio.to_thread``: its default executor is shared (six threads here) and
unbounded in its queue. Under load, work that ran past the budget keeps its thread after
the request has had its fallback, new work queues behind it, so it runs past the budget
too, and nearly every answer becomes the heuristic after a long wait.

So scoring gets its own pool of ``threads`` (one API process holds one GIL: more threads
add contention, not throughput) and at most ``max_in_flight`` calls, running or queued.
A call that finds every slot taken is refused at once (:class:`Saturated`); the caller
answers with the heuristic, ``degraded = "shed"``, in microseconds. A call over its budget
(:class:`TimeoutError`) is cancelled if it has not started yet; one already running
finishes (warming the feature cache) and holds its slot until then, so late work can
never pile up: at most ``max_in_flight`` calls exist at any time.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_THREADS = 2
DEFAULT_MAX_IN_FLIGHT = 4


class Saturated(RuntimeError):
    """Every scoring slot is taken: answer with the fallback now rather than wait for one."""


class ScoringLane:
    """A bounded executor for request-time scoring: ``threads`` workers, ``max_in_flight`` calls."""

    def __init__(self, threads: int = DEFAULT_THREADS, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if threads < 1 or max_in_flight < threads:
            raise ValueError(f"need 1 <= threads <= max_in_flight, got {threads} and {max_in_flight}")
        self.threads = threads
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="nearx-scoring")

    async def run(self, work: Callable[[], T], budget_s: float) -> T:
        """``work()``'s result if it finishes within ``budget_s``.

        Raises :class:`Saturated` without running it when every slot is taken, and
        :class:`TimeoutError` when the budget runs out first; exceptions of ``work`` propagate.
        """
        if budget_s <= 0:
            # no work can finish in no time; refusing here, rather than racing asyncio's zero
            # timeout against a thread that may already have finished, makes the answer certain
            raise TimeoutError("a zero latency budget")
        if not self._slots.acquire(blocking=False):
            raise Saturated(f"{self.max_in_flight} scoring calls in flight")
        try:
            future: Future[T] = self._pool.submit(contextvars.copy_context().run, work)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)  # done, failed or cancelled before it started
        # wait_for cancels the wrapper on timeout, which cancels a call still queued
        return await asyncio.wait_for(asyncio.wrap_future(future), budget_s)

    def _release(self, _: Future[Any]) -> None:
        self._slots.release()

    def close(self) -> None:
        """Stop the workers after their current calls; queued calls are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)
