"""Travel time and distance per mode: the routing provider interface and its default.

Dispatch costs every candidate pair, the simulator moves every courier, and the
API quotes ETAs; all of them ask a :class:`RoutingProvider`, so a road-graph
provider (or a learned ETA model) can replace the default without touching them.

The default, :class:`HaversineRouting`, is haversine distance times a per-city
circuity factor, at a speed that depends on the mode and the local hour. The
numbers live in ``nearx/data/routing.toml`` (with their sources), not in code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from nearx.clock import ensure_utc
from nearx.geo import EARTH_RADIUS_M
from nearx.settings import Settings

FloatArray = npt.NDArray[np.float64]


class Mode(StrEnum):
    """How a courier moves. The values are stored in the database and in events."""

    FOOT = "foot"
    BICYCLE = "bicycle"
    E_BIKE = "e_bike"
    EV_SCOOTER = "ev_scooter"
    MOTORBIKE = "motorbike"
    CAR = "car"


@dataclass(frozen=True, slots=True)
class ModeProfile:
    free_flow_kmh: float
    congestion_sensitivity: float
    max_plausible_kmh: float


@dataclass(frozen=True, slots=True)
class RoutingProfile:
    """The tunable numbers of the default provider, loaded from data."""

    circuity: dict[str, float]
    congestion_by_hour: tuple[float, ...]
    modes: dict[Mode, ModeProfile]

    def circuity_for(self, city_id: str) -> float:
        return self.circuity.get(city_id, self.circuity["default"])

    def speed_mps(self, mode: Mode, local_hour: int) -> float:
        """Door-to-door speed in metres per second for ``mode`` at a local hour (0-23)."""
        profile = self.modes[mode]
        slowdown = profile.congestion_sensitivity * self.congestion_by_hour[local_hour]
        return profile.free_flow_kmh * (1.0 - slowdown) / 3.6

    def max_plausible_mps(self, mode: Mode) -> float:
        """The fastest a GPS track of this mode can honestly move; faster jumps are flagged."""
        return self.modes[mode].max_plausible_kmh / 3.6


@cache
def default_profile() -> RoutingProfile:
    """The profile shipped in ``nearx/data/routing.toml`` (read once)."""
    raw = tomllib.loads(resources.files("nearx").joinpath("data/routing.toml").read_text("utf-8"))
    return profile_from_mapping(raw)


def profile_from_mapping(raw: dict[str, Any]) -> RoutingProfile:
    """Validate a profile mapping (the TOML's shape): every mode present, 24 hourly factors in [0, 1)."""
    hourly = tuple(float(value) for value in raw["congestion"]["hourly"])
    if len(hourly) != 24 or not all(0.0 <= value < 1.0 for value in hourly):
        raise ValueError("congestion.hourly needs 24 values in [0, 1)")
    modes = {Mode(name): ModeProfile(**values) for name, values in raw["mode"].items()}
    if set(modes) != set(Mode):
        raise ValueError(f"routing profile must cover every mode, missing {sorted(set(Mode) - set(modes))}")
    circuity = {city: float(value) for city, value in raw["circuity"].items()}
    if "default" not in circuity or any(value < 1.0 for value in circuity.values()):
        raise ValueError("circuity needs a 'default' and every factor >= 1")
    return RoutingProfile(circuity=circuity, congestion_by_hour=hourly, modes=modes)


@dataclass(frozen=True, slots=True)
class Leg:
    distance_m: float
    duration_s: float


class RoutingProvider(Protocol):
    """Travel distance and time between points for a mode, departing at a given time."""

    def leg(
        self, origin: tuple[float, float], destination: tuple[float, float], mode: Mode, depart_at: datetime
    ) -> Leg: ...

    def matrix(
        self,
        origins: FloatArray,
        destinations: FloatArray,
        mode: Mode,
        depart_at: datetime,
    ) -> tuple[FloatArray, FloatArray]:
        """``(distance_m, duration_s)``, each of shape ``(len(origins), len(destinations))``.

        ``origins`` and ``destinations`` are ``(n, 2)`` arrays of ``(lat, lng)`` in degrees.
        A pair with no route (the road graph's separate islands) is ``inf`` in both arrays.
        """
        ...

    def pairs(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        """Element-wise ``(distance_m, duration_s)`` from ``origins[i]`` to ``destinations[i]``."""
        ...


class RoutingError(ValueError):
    """A routing question a provider cannot answer (a point off its road graph, no path); says why."""


class HaversineRouting:
    """Great-circle distance x city circuity, at mode- and hour-dependent speeds."""

    def __init__(self, city_id: str, timezone: str, profile: RoutingProfile | None = None) -> None:
        self.city_id = city_id
        self._zone = ZoneInfo(timezone)
        self.profile = profile or default_profile()
        self._circuity = self.profile.circuity_for(city_id)

    def local_hour(self, at: datetime) -> int:
        return ensure_utc(at).astimezone(self._zone).hour

    def leg(
        self, origin: tuple[float, float], destination: tuple[float, float], mode: Mode, depart_at: datetime
    ) -> Leg:
        distance, duration = self.matrix(np.array([origin]), np.array([destination]), mode, depart_at)
        return Leg(distance_m=float(distance[0, 0]), duration_s=float(duration[0, 0]))

    def matrix(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        distance = pairwise_haversine_m(origins, destinations) * self._circuity
        return distance, distance / self.profile.speed_mps(mode, self.local_hour(depart_at))

    def pairs(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        distance = elementwise_haversine_m(origins, destinations) * self._circuity
        return distance, distance / self.profile.speed_mps(mode, self.local_hour(depart_at))


class FallbackRouting:
    """``primary``, except where it raises :class:`RoutingError`: there ``fallback`` answers.

    A customer at a point the road graph does not cover (outside the extract, or a route the graph
    lacks) still gets an ETA and a dispatch cost, so a request never fails on routing. Pairs the
    graph answers with ``inf`` (separate islands) get the fallback's answer from :meth:`pairs`,
    whose callers (ETA, dispatch costs) price one concrete trip each; :meth:`matrix` keeps them
    ``inf`` as the protocol says, for callers that want to see the islands.
    """

    def __init__(self, primary: RoutingProvider, fallback: RoutingProvider) -> None:
        self.primary = primary
        self.fallback = fallback

    def leg(
        self, origin: tuple[float, float], destination: tuple[float, float], mode: Mode, depart_at: datetime
    ) -> Leg:
        try:
            return self.primary.leg(origin, destination, mode, depart_at)
        except RoutingError:
            return self.fallback.leg(origin, destination, mode, depart_at)

    def matrix(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        try:
            return self.primary.matrix(origins, destinations, mode, depart_at)
        except RoutingError:
            return self.fallback.matrix(origins, destinations, mode, depart_at)

    def pairs(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        try:
            distance, duration = self.primary.pairs(origins, destinations, mode, depart_at)
        except RoutingError:
            return self.fallback.pairs(origins, destinations, mode, depart_at)
        missing = ~(np.isfinite(distance) & np.isfinite(duration))
        if missing.any():
            distance, duration = distance.copy(), duration.copy()
            distance[missing], duration[missing] = self.fallback.pairs(
                np.asarray(origins)[missing], np.asarray(destinations)[missing], mode, depart_at
            )
        return distance, duration


def routing_provider(settings: Settings, city_id: str, timezone: str) -> RoutingProvider:
    """The provider ``NEARX_ROUTING`` selects: haversine (the default), or the OSM road graph with
    haversine answering what the graph cannot (:class:`FallbackRouting`)."""
    haversine = HaversineRouting(city_id, timezone)
    if settings.routing == "graph" and settings.routing_pbf is not None:
        from nearx.roadgraph import RoadGraphRouting, load_road_graph  # parses the extract once

        return FallbackRouting(RoadGraphRouting(load_road_graph(settings.routing_pbf), timezone), haversine)
    return haversine


def elementwise_haversine_m(origins: FloatArray, destinations: FloatArray) -> FloatArray:
    """Great-circle metres from ``origins[i]`` to ``destinations[i]`` (both ``(n, 2)`` degrees)."""
    a = np.radians(np.asarray(origins, dtype=np.float64).reshape(-1, 2))
    b = np.radians(np.asarray(destinations, dtype=np.float64).reshape(-1, 2))
    h = (
        np.sin((b[:, 0] - a[:, 0]) * 0.5) ** 2
        + np.cos(a[:, 0]) * np.cos(b[:, 0]) * np.sin((b[:, 1] - a[:, 1]) * 0.5) ** 2
    )
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))), dtype=np.float64)


def pairwise_haversine_m(origins: FloatArray, destinations: FloatArray) -> FloatArray:
    """Great-circle metres between every origin and every destination, ``(n, 2)`` x ``(m, 2)`` degrees."""
    a = np.radians(np.asarray(origins, dtype=np.float64).reshape(-1, 2))
    b = np.radians(np.asarray(destinations, dtype=np.float64).reshape(-1, 2))
    dlat = b[None, :, 0] - a[:, None, 0]
    dlng = b[None, :, 1] - a[:, None, 1]
    h = np.sin(dlat * 0.5) ** 2 + np.cos(a[:, None, 0]) * np.cos(b[None, :, 0]) * np.sin(dlng * 0.5) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))), dtype=np.float64)
