"""The customer's ETA: when the courier is expected at the door, from where they are now.

Dispatch rounds and the customer ETA ask the same :class:`~nearx.dispatch.EtaPredictor`
(:func:`city_eta`), so a model-backed predictor plugged in there serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from api.domains.orders import service as orders
from nearx.db import Connection
from nearx.dispatch import EtaPredictor, RoutingEta
from nearx.routing import HaversineRouting, Mode, routing_provider
from nearx.settings import Settings

Trip = tuple[tuple[float, float], tuple[float, float]]
Promises = Mapping[Trip, float]
"""Seconds promised per order trip (pickup, drop-off): the green model checks a low-emission courier
against them in a dispatch round."""
PredictorFactory = Callable[[dict[str, Any], Promises], EtaPredictor]
_plugged: list[PredictorFactory] = []


def plug_predictor(factory: PredictorFactory | None) -> None:
    """Install the model-backed predictor (the app's lifespan does, from the serving runtime:
    ``api.domains.scoring.dispatch``); ``None`` goes back to the routing provider."""
    _plugged[:] = [] if factory is None else [factory]


@contextmanager
def plugged(factory: PredictorFactory) -> Iterator[None]:
    """``factory`` plugged in for the block; whatever was plugged before comes back after it."""
    previous = list(_plugged)
    _plugged[:] = [factory]
    try:
        yield
    finally:
        _plugged[:] = previous


async def promised_trips(conn: Connection, deliveries: list[dict[str, Any]]) -> Promises:
    """The P90 promised at checkout for each delivery's trip (orders without a promise are left out)."""
    p90 = await orders.promised_p90_s(conn, [row["merchant_order_id"] for row in deliveries])
    return {
        ((row["pickup_lat"], row["pickup_lng"]), (row["dropoff_lat"], row["dropoff_lng"])): float(
            p90[row["merchant_order_id"]]
        )
        for row in deliveries
        if row["merchant_order_id"] in p90
    }


def routing_predictors(settings: Settings) -> PredictorFactory:
    """Routing only, from the provider ``NEARX_ROUTING`` selects (``nearx dispatch run`` plugs it:
    that process has no serving runtime, so no models)."""

    def predictor(city: dict[str, Any], promises: Promises) -> EtaPredictor:
        return RoutingEta(routing_provider(settings, city["id"], city["timezone"]))

    return predictor


def city_eta(city: dict[str, Any], promises: Promises | None = None) -> EtaPredictor:
    """The travel-time predictor for a city: the plugged-in one, else haversine routing (a process
    that plugs nothing, such as a test calling the services directly, has no settings to ask)."""
    if _plugged:
        return _plugged[0](city, promises or {})
    return RoutingEta(HaversineRouting(city["id"], city["timezone"]))


def door_eta(
    predictor: EtaPredictor,
    delivery: dict[str, Any],
    mode: Mode,
    position: tuple[float, float] | None,
    now: datetime,
) -> datetime:
    """Hand-over time: to the pickup (waiting for the order if it is not ready), then to the drop-off.

    After pickup only the leg from the courier's position to the drop-off is left.
    Without a known position the courier is taken to be at the pickup.
    """
    pickup = (delivery["pickup_lat"], delivery["pickup_lng"])
    dropoff = (delivery["dropoff_lat"], delivery["dropoff_lng"])
    if delivery["status"] == "picked_up":
        _, seconds = predictor.travel(np.array([position or pickup]), np.array([dropoff]), [mode], now)
        return now + timedelta(seconds=float(seconds[0]))
    start = position or pickup
    _, seconds = predictor.travel(np.array([start, pickup]), np.array([pickup, dropoff]), [mode, mode], now)
    ready_at: datetime = delivery["ready_at"]
    at_pickup = max(now + timedelta(seconds=float(seconds[0])), ready_at)
    return at_pickup + timedelta(seconds=float(seconds[1]))
