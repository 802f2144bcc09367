"""ETA promises for orders (orders' :class:`~api.domains.orders.ports.EtaPromiser`) from serving.

P50/P90 come from the ETA champion through the runtime's scorer for the city, within the
latency budget; otherwise from its routing heuristic, marked ``degraded`` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from api.domains.merchants.hours import local_time
from api.domains.orders.ports import CityClock, DeliveryLeg, PromisedEta
from serving.eta import Promise, Trips
from serving.runtime import ScoringRuntime


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
            lambda: scorer.promise(trips), lambda: scorer.heuristic(trips, "over_budget"), "eta"
        )
        return promised(promise)


def promised(promise: Promise) -> list[PromisedEta]:
    """One promise per trip, in whole seconds, named by model and version (or marked degraded)."""
    model = f"{promise.model}@{promise.version}" if promise.model else None
    return [
        PromisedEta(round(float(p50)), round(float(p90)), model, promise.degraded)
        for p50, p90 in zip(promise.p50_s, promise.p90_s, strict=True)
    ]
