"""What the cities API returns."""

from __future__ import annotations

from typing import Any

from api.schemas import Output


class City(Output):
    """A city NEARX serves: its money, its clock, and where it is."""

    id: str
    name: str
    country: str
    currency: str
    timezone: str
    bbox: tuple[float, float, float, float]
    """``[min_lng, min_lat, max_lng, max_lat]``, the GeoJSON bbox order."""
    boundary: dict[str, Any]
    """GeoJSON Polygon, ``[lng, lat]`` order."""
