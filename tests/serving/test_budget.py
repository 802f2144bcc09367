"""The scoring lane sheds load instead of queueing it, and late work never piles up."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from feast import FeatureStore

from serving import metrics
from serving.budget import Saturated, ScoringLane
from serving.match import Candidates, Customer
from serving.online import NotCached, OnlineFeatures
from serving.registry import MlflowSource, ModelRegistry
from serving.runtime import ScoringRuntime


def _blocked(gate: threading.Event, started: threading.Event | None = None) -> str:
    if started is not None:
        started.set()
    gate.wait(10)
    return "late"


async def test_a_full_lane_refuses_at_once_and_takes_work_again_when_a_slot_frees() -> None:
    lane = ScoringLane(threads=1, max_in_flight=1)
    gate = threading.Event()
    first = asyncio.create_task(lane.run(lambda: _blocked(gate), 10.0))
    await asyncio.sleep(0.05)
    with pytest.raises(Saturated):
        await lane.run(lambda: "never", 10.0)
    gate.set()
    assert await first == "late"
    assert await lane.run(lambda: "next", 10.0) == "next"
    lane.close()


async def test_work_over_budget_keeps_its_slot_until_it_ends_so_late_work_cannot_pile_up() -> None:
    lane = ScoringLane(threads=1, max_in_flight=1)
    gate, started = threading.Event(), threading.Event()
    with pytest.raises(TimeoutError):
        await lane.run(lambda: _blocked(gate, started), 0.05)
    assert started.is_set()  # it runs on, warming caches, but holds the only slot
    with pytest.raises(Saturated):
        await lane.run(lambda: "never", 10.0)
    gate.set()
    for _ in range(100):  # the slot comes back when the late call ends
        try:
            assert await lane.run(lambda: "next", 10.0) == "next"
            break
        except Saturated:
            await asyncio.sleep(0.01)
    else:
        pytest.fail("the slot of the finished call never came back")
    lane.close()


async def test_a_queued_call_past_its_budget_is_dropped_before_it_runs() -> None:
    lane = ScoringLane(threads=1, max_in_flight=2)
    gate, ran = threading.Event(), threading.Event()
    busy = asyncio.create_task(lane.run(lambda: _blocked(gate), 10.0))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await lane.run(ran.set, 0.05)  # queued behind the busy call, then over budget
    gate.set()
    assert await busy == "late"
    assert await lane.run(lambda: "a", 10.0) == "a"
    assert not ran.is_set()
    lane.close()


def test_a_lane_needs_a_thread_and_room_for_it() -> None:
    with pytest.raises(ValueError, match="threads"):
        ScoringLane(threads=2, max_in_flight=1)


def _candidates(n: int = 4) -> Candidates:
    return Candidates(
        merchant_ids=[f"m{i}" for i in range(n)],
        distance_m=np.linspace(100.0, 900.0, n),
        price_level=np.ones(n),
        prep_estimate_s=np.full(n, 600.0),
        is_favourite=np.zeros(n),
        green_possible=np.ones(n),
    )


async def test_a_saturated_runtime_answers_the_heuristic_marked_shed_and_counts_it(
    tmp_path: Path, feature_store: FeatureStore
) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/none/mlflow.db"), [])
    runtime = ScoringRuntime(
        registry=registry, open_store=lambda: None, budget_s=10.0, lane=ScoringLane(1, 1)
    )
    runtime.online = OnlineFeatures(feature_store)  # cold: ranking must read rows, so it takes the lane
    gate = threading.Event()
    busy = asyncio.create_task(runtime.within_budget(lambda: _blocked(gate), lambda r: r, "match"))
    await asyncio.sleep(0.05)
    shed = metrics.DEGRADED.labels("match", "shed")._value.get()
    ranking = await runtime.rank(_candidates(), Customer("c1"))
    assert ranking.degraded == "shed"
    assert ranking.model is None
    assert list(ranking.order) == [0, 1, 2, 3]  # the heuristic: nearest first, all else equal
    assert metrics.DEGRADED.labels("match", "shed")._value.get() == shed + 1
    assert await runtime.score_fraud(object()) == "shed"  # type: ignore[arg-type]
    gate.set()
    assert await busy == "late"
    await runtime.stop()


async def test_a_zero_budget_answers_over_budget_without_running_the_work() -> None:
    lane = ScoringLane(threads=1, max_in_flight=1)
    ran = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            await lane.run(ran.set, 0.0)
        assert await lane.run(lambda: "next", 10.0) == "next"  # the refused call held no slot
    finally:
        lane.close()
    assert not ran.is_set()


async def test_a_warm_request_scores_on_the_event_loop_and_a_cold_one_on_the_lane(tmp_path: Path) -> None:
    registry = ModelRegistry(MlflowSource(f"sqlite:///{tmp_path}/none/mlflow.db"), [])
    runtime = ScoringRuntime(registry=registry, open_store=lambda: None, budget_s=10.0)
    calls: list[tuple[bool, str]] = []

    def work(cached_only: bool) -> str:
        calls.append((cached_only, threading.current_thread().name))
        if cached_only and len(calls) == 1:
            raise NotCached("a row to read")
        return "scored"

    try:
        assert await runtime.warm_or_within_budget(work, lambda reason: reason, "match") == "scored"
        assert await runtime.warm_or_within_budget(work, lambda reason: reason, "match") == "scored"
    finally:
        await runtime.stop()
    here = threading.current_thread().name
    (cold_try, cold_name), (lane_try, lane_name), (warm_try, warm_name) = calls
    assert (cold_try, cold_name) == (True, here)  # tried here first, and refused before any I/O
    assert not lane_try  # then read through on the lane
    assert lane_name.startswith("nearx-scoring")
    assert (warm_try, warm_name) == (True, here)  # warm: answered on the event loop
