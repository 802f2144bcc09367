"""Geographic primitives: coordinate validation, great-circle distance and H3 cells.

Proximity search, dispatch and the simulator all build on these, so the
definitions of "a valid point" and "the distance between two points" live once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import h3

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), the usual choice for haversine distances."""


class InvalidCoordinates(ValueError):
    """Latitude or longitude is outside the valid range or not a finite number."""


@dataclass(frozen=True, slots=True)
class Point:
    """A validated WGS-84 point."""

    lat: float
    lng: float

    def __post_init__(self) -> None:
        validate_coordinates(self.lat, self.lng)


def validate_coordinates(lat: float, lng: float) -> None:
    """Raise :class:`InvalidCoordinates` unless ``-90 <= lat <= 90`` and ``-180 <= lng <= 180``."""
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise InvalidCoordinates("coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise InvalidCoordinates(f"latitude {lat} is outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidCoordinates(f"longitude {lng} is outside [-180, 180]")


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def h3_cells(lat: float, lng: float, resolutions: tuple[int, ...]) -> dict[int, str]:
    """The H3 cell of a point at each resolution, as hex strings keyed by resolution."""
    validate_coordinates(lat, lng)
    return {resolution: h3.latlng_to_cell(lat, lng, resolution) for resolution in resolutions}
