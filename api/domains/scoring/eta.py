"""ETA promises for orders (orders' :class:`~api.domains.orders.ports.EtaPromiser`) from serving.

At checkout, P50/P90 come from the ETA champion through the runtime's scorer for the city,
within the latency budget; otherwise from its routing heuristic, marked ``degraded`` with the
reason. After pickup, what is left is the courier's leg from their last position to the door,
priced like a dispatch leg (:class:`serving.dispatch.ModelEta`, routing when the model cannot):
P50 = that leg + :data:`HANDOVER_S`, P90 = P50 + 30 % of the leg (the heuristic's travel margin).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from api.domains.merchants.hours import local_time
from api.domains.orders.ports import CityClock, DeliveryLeg, LiveLeg, PromisedEta
from nearx.dispatch import RoutingEta
from nearx.routing import Mode
from serving.dispatch import ModelEta
from serving.eta import ETA_MODEL, Promise, Trips
from serving.runtime import ScoringRuntime

HANDOVER_S = 60.0
"""Parking and handing over at the door, added to the last leg."""


class ServingPromiser:
    def __init__(self, runtime: ScoringRuntime) -> None:
        self.runtime = runtime

    async def promise(self, city: CityClock, legs: Sequence[DeliveryLeg], at: datetime) -> list[PromisedEta]:
        scorer = self.runtime.eta_scorer(city.city_id, city.timezone, city.country)
        local = local_time(at, city.timezone)
        trips = Trips(
            merchant_ids=[str(leg.merchant_id) for leg in legs],
            merchant_cells_r7=[leg.h3_r7 for leg in legs],
            categories=[leg.category for leg in legs],
            merchant_lat=np.array([leg.pickup[0] for leg in legs], dtype=np.float64),
            merchant_lng=np.array([leg.pickup[1] for leg in legs], dtype=np.float64),
            dropoff_lat=np.array([leg.dropoff[0] for leg in legs], dtype=np.float64),
            dropoff_lng=np.array([leg.dropoff[1] for leg in legs], dtype=np.float64),
            prep_s=np.array([leg.prep_s for leg in legs], dtype=np.float64),
            at=at,
            local_hour=local.hour,
            weekday=local.isoweekday(),
        )
        promise = await self.runtime.within_budget(
            lambda: scorer.promise(trips), lambda reason: scorer.heuristic(trips, reason), "eta"
        )
        return promised(promise)

    async def remaining(self, city: CityClock, legs: Sequence[LiveLeg], at: datetime) -> list[PromisedEta]:
        scorer = self.runtime.eta_scorer(city.city_id, city.timezone, city.country)
        model_eta = ModelEta(scorer, city.timezone)
        origins = np.array([leg.position for leg in legs], dtype=np.float64)
        destinations = np.array([leg.dropoff for leg in legs], dtype=np.float64)
        modes = [Mode(leg.mode) for leg in legs]

        def routing(reason: str) -> tuple[np.ndarray[Any, np.dtype[np.float64]], str]:
            return RoutingEta(scorer.routing).travel(origins, destinations, modes, at)[1], reason

        def work() -> tuple[np.ndarray[Any, np.dtype[np.float64]], str | None]:
            return model_eta.travel(origins, destinations, modes, at)[1], model_eta.degraded

        travel, degraded = await self.runtime.within_budget(work, routing, "eta")
        model = self.runtime.registry.get(ETA_MODEL) if degraded is None else None
        name = f"{model.name}@{model.version}" if model else None
        return [
            PromisedEta(round(s + HANDOVER_S), round(s + HANDOVER_S + 0.3 * s), name, degraded)
            for s in travel.tolist()
        ]


def promised(promise: Promise) -> list[PromisedEta]:
    """One promise per trip, in whole seconds, named by model and version (or marked degraded)."""
    model = f"{promise.model}@{promise.version}" if promise.model else None
    return [
        PromisedEta(round(float(p50)), round(float(p90)), model, promise.degraded)
        for p50, p90 in zip(promise.p50_s, promise.p90_s, strict=True)
    ]
