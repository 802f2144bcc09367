"""The customer's ETA: when the courier is expected at the door, from where they are now.

Dispatch rounds and the customer ETA ask the same :class:`~nearx.dispatch.EtaPredictor`
(:func:`city_eta`), so a model-backed predictor plugged in there serves both.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from nearx.dispatch import EtaPredictor, RoutingEta
from nearx.routing import HaversineRouting, Mode


def city_eta(city: dict[str, Any]) -> EtaPredictor:
    """The travel-time predictor for a city (today the routing provider)."""
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
