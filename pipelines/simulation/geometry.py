"""Vectorised geometry for the simulator: sampling points, distances and H3 cells on arrays."""

from __future__ import annotations

import h3
import numpy as np
import numpy.typing as npt

from nearx.geo import EARTH_RADIUS_M
from pipelines.simulation.cities import City, HotSpot

FloatArray = npt.NDArray[np.float64]
KM_PER_DEG_LAT = 110.57


def sample_points(rng: np.random.Generator, city: City, spots: tuple[HotSpot, ...], n: int) -> FloatArray:
    """``n`` points (lat, lng) from a mixture of Gaussian hot spots, clipped to the city's bbox."""
    weights = np.array([spot.weight for spot in spots])
    which = rng.choice(len(spots), size=n, p=weights / weights.sum())
    centre = np.array([[spot.lat, spot.lng] for spot in spots])[which]
    sigma_km = np.array([spot.sigma_km for spot in spots])[which]
    km_per_deg_lng = KM_PER_DEG_LAT * np.cos(np.radians(centre[:, 0]))
    offsets = rng.standard_normal((n, 2)) * sigma_km[:, None]
    lat = np.clip(centre[:, 0] + offsets[:, 0] / KM_PER_DEG_LAT, city.min_lat, city.max_lat)
    lng = np.clip(centre[:, 1] + offsets[:, 1] / km_per_deg_lng, city.min_lng, city.max_lng)
    return np.column_stack([lat, lng])


def to_km_plane(points: FloatArray, city: City) -> FloatArray:
    """An equirectangular projection in km around the city's centre: exact enough within a city."""
    lat0 = (city.min_lat + city.max_lat) / 2
    lng0 = (city.min_lng + city.max_lng) / 2
    x = (points[:, 1] - lng0) * KM_PER_DEG_LAT * np.cos(np.radians(lat0))
    y = (points[:, 0] - lat0) * KM_PER_DEG_LAT
    return np.column_stack([x, y])


def haversine_m(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise great-circle distance in metres between (lat, lng) arrays ``a`` and ``b``."""
    phi1, phi2 = np.radians(a[:, 0]), np.radians(b[:, 0])
    dphi = phi2 - phi1
    dlmb = np.radians(b[:, 1] - a[:, 1])
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h))), dtype=np.float64)


def h3_cells(points: FloatArray, resolution: int) -> list[str]:
    """H3 cells of entity points. h3 has no array API, so this runs once per entity (thousands),
    never per order: orders and deliveries inherit the cells of their merchant and customer."""
    return [h3.latlng_to_cell(lat, lng, resolution) for lat, lng in points.tolist()]
