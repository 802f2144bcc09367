"""ETA promises (P50/P90) and the green-delivery option, from the ETA and green models or routing.

One call covers a batch of (merchant → drop-off) trips, e.g. the top results of a match or
one order. Model inputs are the model's FeatureService (``eta_v1``/``green_v1``: kitchen,
merchant-hour, courier, cell-hour online features, plus the ``order_context`` on-demand view,
computed by the function its Feast transformation calls in training,
:func:`features.transforms.context.order_context_columns`) and the trip's row features.

The request path is arrays end to end: the online features and row columns of a match's top
results are gathered once (:class:`TripInputs`) for both models, and each model scores them
through :meth:`~serving.registry.LoadedModel.predict_columns` (its boosters on a float
matrix), with no pandas frame or pyfunc call on the way; the answers are the pyfunc's.

Distance: training's ``distance_m`` is the road distance of the trip (the simulator's
``road_m``, straight line x 1.2-1.45 + 150 m); serving sends the routing provider's
distance (straight line x the city's circuity, ``nearx/data/routing.toml``), the same
estimate the routing baseline uses, never the bare straight line. The green model also
reads ``promised_s``, the promise it must keep: the P90 shown to the customer.

Fallback (documented, marked ``degraded``): the routing provider's travel time for the mode
and hour plus the kitchen's prep time and 3 minutes of handling for P50; P90 adds 50% of
prep and 30% of travel. The green option is an e-bike whose routing ETA still meets P90.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from features.transforms.context import ORDER_CONTEXT_FEATURES, order_context_columns
from nearx.emissions import legs_kg_co2e
from nearx.routing import Mode, RoutingProvider
from serving import metrics
from serving.online import Columns, FeaturesUnavailable, OnlineFeatures
from serving.registry import LoadedModel, ModelRegistry, ModelSpec

FloatArray = npt.NDArray[np.float64]

ETA_MODEL = "nearx-eta"
ETA_SERVICE = "eta_v1"
GREEN_MODEL = "nearx-green"
GREEN_SERVICE = "green_v1"
DEFAULT_MODE = Mode.MOTORBIKE
GREEN_MODE = Mode.E_BIKE
GREEN_MIN_P_ON_TIME = 0.7
HANDLING_S = 180.0
ROW_COLUMNS = (
    "distance_m",
    "mode",
    "category",
    "local_hour",
    "weekday",
    "rain",
    "merchant_lat",
    "merchant_lng",
    "dropoff_lat",
    "dropoff_lng",
)
GREEN_COLUMNS = ("promised_s",)
"""What the green model reads besides the trip's row columns: the promise to keep."""


@dataclass(frozen=True)
class Trips:
    """Trips from merchants to one or more drop-off points, as columns of equal length."""

    merchant_ids: Sequence[str]
    merchant_cells_r7: Sequence[str]
    categories: Sequence[str]
    merchant_lat: FloatArray
    merchant_lng: FloatArray
    dropoff_lat: FloatArray
    dropoff_lng: FloatArray
    prep_s: FloatArray
    at: datetime
    local_hour: int
    weekday: int
    courier_ids: Sequence[str] | None = None
    modes: Sequence[Mode] | None = None
    rain: bool = False

    def __len__(self) -> int:
        return len(self.merchant_ids)


@dataclass(frozen=True)
class Promise:
    p50_s: FloatArray
    p90_s: FloatArray
    model: str | None
    version: str | None
    degraded: str | None


@dataclass(frozen=True)
class GreenOption:
    """Whether an e-bike can keep the promise, its CO2e and the saving against the default mode."""

    available: npt.NDArray[np.bool_]
    p_on_time: FloatArray
    kg_co2e: FloatArray
    saving_kg_co2e: FloatArray
    model: str | None
    version: str | None
    degraded: str | None = None
    mode: Mode = field(default=GREEN_MODE)


def eta_spec(features: tuple[str, ...], request_features: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        ETA_MODEL, frozenset((*ROW_COLUMNS, *features, *request_features)), ("eta_p50_s", "eta_p90_s")
    )


def green_spec(features: tuple[str, ...], request_features: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        GREEN_MODEL, frozenset((*ROW_COLUMNS, *GREEN_COLUMNS, *features, *request_features)), ("p_on_time",)
    )


class EtaScorer:
    def __init__(
        self, registry: ModelRegistry, online: OnlineFeatures | None, routing: RoutingProvider, country: str
    ) -> None:
        self.registry = registry
        self.online = online
        self.routing = routing
        self.country = country

    def routing_travel_s(self, trips: Trips, mode: Mode) -> tuple[FloatArray, FloatArray]:
        origins = np.column_stack((trips.merchant_lat, trips.merchant_lng))
        destinations = np.column_stack((trips.dropoff_lat, trips.dropoff_lng))
        return self.routing.pairs(origins, destinations, mode, trips.at)

    def heuristic(self, trips: Trips, reason: str) -> Promise:
        _, travel = self.routing_travel_s(trips, DEFAULT_MODE)
        p50 = trips.prep_s + travel + HANDLING_S
        return Promise(p50, p50 + 0.5 * trips.prep_s + 0.3 * travel, None, None, reason)

    def promise(self, trips: Trips) -> Promise:
        return self._promise(TripInputs(trips))

    def green(self, trips: Trips, promise: Promise) -> GreenOption:
        return self._green(TripInputs(trips), promise)

    def promise_and_green(self, trips: Trips, *, cached_only: bool = False) -> tuple[Promise, GreenOption]:
        """:meth:`promise`, then :meth:`green` for that promise, on one :class:`TripInputs`: the
        trips' columns are built and their online features fetched once for both models.
        ``cached_only``: raise :class:`~serving.online.NotCached` rather than read a feature row
        from outside this process."""
        inputs = TripInputs(trips, cached_only=cached_only)
        promise = self._promise(inputs)
        return promise, self._green(inputs, promise)

    def _promise(self, inputs: TripInputs) -> Promise:
        started = time.perf_counter()
        trips = inputs.trips
        modes = [DEFAULT_MODE] * len(trips) if trips.modes is None else trips.modes
        result = self._with_model(ETA_MODEL, ETA_SERVICE, inputs, modes)
        if isinstance(result, str):
            metrics.DEGRADED.labels("eta", result).inc()
            promise = self.heuristic(trips, result)
        else:
            model, out = result
            p50 = np.asarray(out["eta_p50_s"], dtype=np.float64)
            promise = Promise(
                p50,
                np.maximum(np.asarray(out["eta_p90_s"], dtype=np.float64), p50),
                model.name,
                model.version,
                None,
            )
            metrics.SCORED.labels(model.name, model.version).inc()
        metrics.SCORING_SECONDS.labels("eta").observe(time.perf_counter() - started)
        return promise

    def _green(self, inputs: TripInputs, promise: Promise) -> GreenOption:
        trips = inputs.trips
        result = self._with_model(
            GREEN_MODEL, GREEN_SERVICE, inputs, [GREEN_MODE] * len(trips), {"promised_s": promise.p90_s}
        )
        if isinstance(result, str):
            metrics.DEGRADED.labels("green", result).inc()
            return self.green_heuristic(trips, promise, result)
        model, out = result
        return self._option(
            trips, np.asarray(out["p_on_time"], dtype=np.float64), model.name, model.version, None
        )

    def green_heuristic(self, trips: Trips, promise: Promise, reason: str) -> GreenOption:
        """An e-bike is offered when its routing ETA (prep + ride + handling) still meets P90."""
        _, travel = self.routing_travel_s(trips, GREEN_MODE)
        on_time = trips.prep_s + travel + HANDLING_S <= promise.p90_s
        return self._option(trips, on_time.astype(np.float64), None, None, reason)

    def _option(
        self,
        trips: Trips,
        p_on_time: FloatArray,
        model: str | None,
        version: str | None,
        degraded: str | None,
    ) -> GreenOption:
        distance, _ = self.routing_travel_s(trips, GREEN_MODE)
        green_kg = legs_kg_co2e(distance, GREEN_MODE, self.country)
        default_kg = legs_kg_co2e(distance, DEFAULT_MODE, self.country)
        return GreenOption(
            available=p_on_time >= GREEN_MIN_P_ON_TIME,
            p_on_time=p_on_time,
            kg_co2e=green_kg,
            saving_kg_co2e=np.maximum(default_kg - green_kg, 0.0),
            model=model,
            version=version,
            degraded=degraded,
        )

    def model_p50_s(self, trips: Trips, modes: Sequence[Mode]) -> FloatArray | str:
        """The ETA champion's P50 per trip for the given modes, or the reason it has none."""
        result = self._with_model(ETA_MODEL, ETA_SERVICE, TripInputs(trips), modes)
        if isinstance(result, str):
            return result
        return np.asarray(result[1]["eta_p50_s"], dtype=np.float64)

    def model_p_on_time(
        self, trips: Trips, modes: Sequence[Mode], promised_s: FloatArray
    ) -> FloatArray | str:
        """The green champion's P(on time) per trip against ``promised_s``, or the reason it has none."""
        result = self._with_model(
            GREEN_MODEL, GREEN_SERVICE, TripInputs(trips), modes, {"promised_s": promised_s}
        )
        if isinstance(result, str):
            return result
        return np.asarray(result[1]["p_on_time"], dtype=np.float64)

    def _with_model(
        self,
        name: str,
        default_service: str,
        inputs: TripInputs,
        modes: Sequence[Mode],
        extra: Mapping[str, FloatArray] | None = None,
    ) -> tuple[LoadedModel, Mapping[str, Any]] | str:
        """The model's predictions for the trips (``extra``: more request columns), or why not."""
        model = self.registry.get(name)
        if model is None:
            return "no_model"
        if self.online is None:
            return "features_unavailable"
        try:
            features = self._features(model.feature_service or default_service, inputs)
        except FeaturesUnavailable:
            return "features_unavailable"
        try:
            columns = {**features, **self._request_columns(inputs), "mode": [str(m) for m in modes]}
            out = model.predict_columns({**columns, **(extra or {})})
        except Exception:  # a model that cannot score this trip must not fail the request
            return "model_error"
        return model, out

    def _features(self, service: str, inputs: TripInputs) -> Columns:
        """The online features of ``service`` for the trips, among those already fetched for them.

        A service whose features were all read for another model (``green_v1`` is a subset of
        ``eta_v1``) is not asked again, so a match reads its top results' features once.
        """
        assert self.online is not None
        if not set(self.online.plan(service).features) <= inputs.features.keys():
            trips = inputs.trips
            hour = f"@{trips.local_hour:02d}"
            keys = {
                "merchant_id": list(trips.merchant_ids),
                "merchant_hour": [m + hour for m in trips.merchant_ids],
                "cell_hour": [c + hour for c in trips.merchant_cells_r7],
                "courier_id": list(trips.courier_ids) if trips.courier_ids is not None else [""] * len(trips),
            }
            inputs.features.update(self.online.get(service, keys, cached_only=inputs.cached_only))
        return inputs.features

    def _request_columns(self, inputs: TripInputs) -> dict[str, Any]:
        """The trips' row columns but the mode, and the order context computed from them (once)."""
        if inputs.request is None:
            road_m, _ = self.routing_travel_s(inputs.trips, DEFAULT_MODE)  # distance does not depend on mode
            row = _row_columns(inputs.trips, road_m)
            inputs.request = {**row, **order_context_columns(row)}
        return inputs.request


@dataclass
class TripInputs:
    """What the ETA and green models read about one batch of trips, gathered on first use and
    then kept for the other model: online features (by name) and the request's own columns."""

    trips: Trips
    cached_only: bool = False
    """Features from the process cache only (:class:`~serving.online.NotCached` otherwise)."""
    features: Columns = field(default_factory=dict)
    request: dict[str, Any] | None = None


def _row_columns(trips: Trips, road_m: FloatArray) -> dict[str, Any]:
    n = len(trips)
    return {
        "distance_m": road_m,
        "category": list(trips.categories),
        "local_hour": np.full(n, trips.local_hour, dtype=np.int64),
        "weekday": np.full(n, trips.weekday, dtype=np.int64),
        "rain": np.full(n, 1 if trips.rain else 0, dtype=np.int64),
        "merchant_lat": trips.merchant_lat,
        "merchant_lng": trips.merchant_lng,
        "dropoff_lat": trips.dropoff_lat,
        "dropoff_lng": trips.dropoff_lng,
    }


def request_feature_names() -> tuple[str, ...]:
    """The ``order_context`` view's features (its schema is this list)."""
    return ORDER_CONTEXT_FEATURES
