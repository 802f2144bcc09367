"""Dispatch costs from the ETA and green models: a :class:`nearx.dispatch.EtaPredictor` per round.

``travel`` prices every candidate leg of a round (courier → pickup, pickup → drop-off, the
legs of stacked bundles) in one batched model call, so the solver in ``nearx.dispatch``
stays pure and the same policy runs with or without models.

- **Leg time** is the ETA champion's P50 for a trip of the leg's road distance, in the leg's
  mode, hour and pickup cell, minus its P50 for the same trip at zero distance: the model's
  time for the distance alone (kitchen, handling and waiting are in both and cancel). It is
  kept within [0.5, 2] x the routing provider's time for the leg, so a step of the trees
  never makes a leg free or absurd. Distances are the routing provider's.
- **Green preference.** The cost already charges CO2e (``seconds_per_kg_co2e``), which
  favours foot, bicycle and e-bike couriers. For a low-emission courier on an order's own
  trip (pickup → drop-off, given with the order's promise) the green champion says whether
  the promise still holds; where its P(on time) is under :data:`GREEN_MIN_P_ON_TIME` the
  leg is charged :data:`MISSED_PROMISE_S` more, which outweighs the CO2e saving of any city
  trip. So a low-emission courier wins when the promise holds and loses when it doesn't.
- **Fallback.** Without a champion, online features, or on a model error, legs are the
  routing provider's (``RoutingEta``) and no green check is made; :attr:`ModelEta.degraded`
  says why and ``nearx_degraded_total{scorer="dispatch"}`` counts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from features.transforms.tables import LOW_EMISSION_MODES
from nearx.clock import ensure_utc
from nearx.dispatch import RoutingEta
from nearx.geo import h3_cells
from nearx.routing import Mode
from serving import metrics
from serving.eta import ETA_MODEL, GREEN_MIN_P_ON_TIME, EtaScorer, Trips

FloatArray = npt.NDArray[np.float64]
LatLng = tuple[float, float]
Trip = tuple[LatLng, LatLng]

MISSED_PROMISE_S = 900.0
"""What a low-emission courier is charged on a trip the green model says would miss its promise."""
LEG_BAND = (0.5, 2.0)
"""A model leg time stays within these multiples of the routing time."""


class ModelEta:
    """The round's leg times from the models; ``promises`` maps an order's (pickup, drop-off) to the
    seconds promised for it (its P90), which is what the green model is asked to keep."""

    def __init__(
        self, scorer: EtaScorer, timezone: str, promises: Mapping[Trip, float] | None = None
    ) -> None:
        self.scorer = scorer
        self.zone = ZoneInfo(timezone)
        self.promises = dict(promises or {})
        self.routing = RoutingEta(scorer.routing)
        self.degraded: str | None = None

    def travel(
        self, origins: FloatArray, destinations: FloatArray, modes: Sequence[Mode], depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        metres, routing_s = self.routing.travel(origins, destinations, modes, depart_at)
        if not len(modes):
            return metres, routing_s
        if self.scorer.registry.get(ETA_MODEL) is None:  # skip building the legs' model inputs
            self._degrade("no_model")
            return metres, routing_s
        n = len(modes)
        legs = self._trips(
            np.concatenate([origins, origins]), np.concatenate([destinations, origins]), depart_at
        )
        p50 = self.scorer.model_p50_s(legs, [*modes, *modes])
        if isinstance(p50, str):
            self._degrade(p50)
            return metres, routing_s
        low, high = LEG_BAND
        seconds = np.clip(p50[:n] - p50[n:], low * routing_s, high * routing_s)
        return metres, seconds + self._green_penalty(origins, destinations, modes, depart_at)

    def _green_penalty(
        self, origins: FloatArray, destinations: FloatArray, modes: Sequence[Mode], depart_at: datetime
    ) -> FloatArray:
        penalty = np.zeros(len(modes))
        trips = [
            i
            for i, mode in enumerate(modes)
            if mode in LOW_EMISSION_MODES and _trip(origins[i], destinations[i]) in self.promises
        ]
        if not trips:
            return penalty
        at = np.array(trips)
        promised = np.array([self.promises[_trip(origins[i], destinations[i])] for i in trips])
        p_on_time = self.scorer.model_p_on_time(
            self._trips(origins[at], destinations[at], depart_at), [modes[i] for i in trips], promised
        )
        if isinstance(p_on_time, str):
            self._degrade(p_on_time)
            return penalty
        penalty[at] = np.where(p_on_time < GREEN_MIN_P_ON_TIME, MISSED_PROMISE_S, 0.0)
        return penalty

    def _trips(self, origins: FloatArray, destinations: FloatArray, at: datetime) -> Trips:
        local = ensure_utc(at).astimezone(self.zone)
        n = len(origins)
        return Trips(
            merchant_ids=[""] * n,  # a leg has no merchant: its kitchen features are missing in both rows
            merchant_cells_r7=[h3_cells(float(lat), float(lng), (7,))[7] for lat, lng in origins],
            categories=[""] * n,
            merchant_lat=origins[:, 0],
            merchant_lng=origins[:, 1],
            dropoff_lat=destinations[:, 0],
            dropoff_lng=destinations[:, 1],
            prep_s=np.zeros(n),
            at=at,
            local_hour=local.hour,
            weekday=local.isoweekday(),
        )

    def _degrade(self, reason: str) -> None:
        self.degraded = reason
        metrics.DEGRADED.labels("dispatch", reason).inc()


def _trip(origin: FloatArray, destination: FloatArray) -> Trip:
    return (float(origin[0]), float(origin[1])), (float(destination[0]), float(destination[1]))
