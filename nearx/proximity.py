"""Exact "N nearest within R metres" over an in-process H3 index.

Dispatch rounds, the courier and merchant finders and the city simulator all ask
the same question thousands of times a second, so it is answered in process
instead of a database round trip per query.

How it works
------------
Points are stored once, sorted by their H3 cell at :data:`FINEST_RESOLUTION`.
Because an H3 index stores its digits from coarse to fine, all descendants of a
cell at any coarser resolution form one contiguous run of that sorted array, so
"the points of these cells" at any resolution is two binary searches per cell
(no per-resolution copies of the data).

A query picks a resolution from R, N and the local density (a heuristic that
only affects speed), then grows hexagonal rings around the query's cell: ring 0,
ring 1, ... For every ring it computes exact haversine distances (vectorised
NumPy) for the points of the new cells and a lower bound ``L`` on the distance
from the query to any point *not yet seen*.

Why the answer is exact
-----------------------
Let ``D_k`` be the cells at grid distance ``<= k`` from the origin cell. Any
point ``p`` outside ``D_k`` lies in a cell at grid distance ``>= k + 1``. Walk
along the great-circle segment from the query ``q`` to ``p``: it passes from
cell to cell only through shared edges or vertices, and cells sharing an edge or
a vertex are grid neighbours, so the grid distance changes by at most one per
step. It starts at 0 and ends at ``>= k + 1``, so the segment touches a point
``x`` in some cell ``c`` of ring ``k + 1``. With ``center(c)`` the cell centre and
``rad(c)`` its circumradius (the farthest boundary vertex: H3 edges are
geodesics, so no point of the cell is farther than a vertex)::

    d(q, p) >= d(q, x) >= d(q, center(c)) - rad(c) >= L_k := min over ring k+1 of that

The search stops when either

* ``L_k > R``: nothing unseen is within R, so every point within R was seen; or
* at least N seen points lie strictly closer than ``L_k`` (and within R): the
  N-th best seen distance is ``< L_k``, so no unseen point can enter the top N.

"Enough candidates" alone would not be exact (a candidate from ring 1 can be
farther than an unseen point just across the ring's edge); the second rule
compares the k-th distance with the covered radius. ``L_k`` is lowered by a
small margin for floating-point rounding and H3's own point-in-cell rounding.
Ties are broken by the point's position in the build input, so the result is
the same sequence an exhaustive search ordered by ``(distance, position)`` gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt
from h3 import H3BaseException

from nearx.geo import EARTH_RADIUS_M, validate_coordinates

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FINEST_RESOLUTION = 11
"""Cells of about 25 m edge: fine enough for dense city centres."""

COARSEST_RESOLUTION = 4
"""Cells of about 26 km edge: the widest search radius stays within a few rings."""

MAX_RADIUS_M = 100_000.0
"""Hyperlocal means a city: a wider radius is a caller bug, not a query."""

RINGS_TO_COVER_RADIUS = 4
"""A sparse query (fewer than N points within R) must cover R; keep that to about this many rings."""

_BOUND_MARGIN_M = 0.05
"""Slack for float rounding and for H3 assigning a point that sits on a cell edge to the neighbour."""

_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The answer, nearest first: input positions, caller ids and distances in metres."""

    positions: IntArray
    ids: npt.NDArray[Any]
    distances_m: FloatArray

    def __len__(self) -> int:
        return int(self.positions.size)


def unit_vectors(lats: npt.ArrayLike, lngs: npt.ArrayLike) -> FloatArray:
    """Points as 3-D unit vectors, shape ``(n, 3)``: the form every distance here is computed from."""
    lat_r = np.radians(np.asarray(lats, dtype=np.float64))
    lng_r = np.radians(np.asarray(lngs, dtype=np.float64))
    cos_lat = np.cos(lat_r)
    return np.ascontiguousarray(
        np.stack([cos_lat * np.cos(lng_r), cos_lat * np.sin(lng_r), np.sin(lat_r)], axis=-1)
    )


def chord2_to_m(chord2: npt.ArrayLike) -> FloatArray:
    """Great-circle metres from squared chord lengths on the unit sphere (what ranking uses).

    Squared chords come from coordinate differences, not from a dot product, so
    they keep full relative precision at metre scale; they rank exactly like
    great-circle distances and convert to the haversine distance of
    :func:`nearx.geo.haversine_m` (same sphere, same radius).
    """
    half_chord = np.sqrt(np.asarray(chord2, dtype=np.float64)) * 0.5
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(half_chord, 1.0)), dtype=np.float64)


def m_to_chord2(metres: float) -> float:
    """Inverse of :func:`chord2_to_m` for one distance (thresholds: R, the ring bound)."""
    angle = min(metres / EARTH_RADIUS_M, math.pi)
    return (2.0 * math.sin(angle * 0.5)) ** 2


def nearest_brute_force(
    lats: npt.ArrayLike, lngs: npt.ArrayLike, lat: float, lng: float, n: int, radius_m: float
) -> Neighbours:
    """The exhaustive answer (every distance computed): the oracle in tests and the baseline in bench/."""
    _validate_query(lat, lng, n, radius_m)
    chord2 = _chord2(unit_vectors(lats, lngs), _unit_vector(lat, lng))
    positions = np.flatnonzero(chord2 <= m_to_chord2(radius_m))
    identity = np.arange(chord2.size, dtype=np.int64)
    return _top_n(positions, chord2[positions], n, identity, identity)


class ProximityIndex:
    """An immutable snapshot of points (e.g. the couriers online now, the merchants open now).

    Build a fresh one per dispatch round or per change batch: building sorts once
    (O(n log n), well under a second per million points, dominated by H3); a
    query touches only the points of the cells it scans.
    """

    def __init__(self, lats: npt.ArrayLike, lngs: npt.ArrayLike, ids: npt.ArrayLike | None = None) -> None:
        lat_arr = np.asarray(lats, dtype=np.float64)
        lng_arr = np.asarray(lngs, dtype=np.float64)
        if lat_arr.shape != lng_arr.shape or lat_arr.ndim != 1:
            raise ValueError("lats and lngs must be one-dimensional arrays of the same length")
        if lat_arr.size and not (
            np.isfinite(lat_arr).all()
            and np.isfinite(lng_arr).all()
            and (np.abs(lat_arr) <= 90).all()
            and (np.abs(lng_arr) <= 180).all()
        ):
            raise ValueError("every point needs a finite latitude in [-90, 90] and longitude in [-180, 180]")
        id_arr = np.arange(lat_arr.size) if ids is None else np.asarray(ids)
        if id_arr.shape != lat_arr.shape:
            raise ValueError("ids must have one entry per point")
        cells = np.fromiter(
            (
                h3i.latlng_to_cell(a, b, FINEST_RESOLUTION)
                for a, b in zip(lat_arr.tolist(), lng_arr.tolist(), strict=True)
            ),
            dtype=np.uint64,
            count=lat_arr.size,
        )
        order = np.argsort(cells, kind="stable")
        self._cells = cells[order]
        self._order = order.astype(np.int64)
        self._ids = id_arr[order]
        self._xyz = unit_vectors(lat_arr, lng_arr)[order]  # same arithmetic per point as brute force

    def __len__(self) -> int:
        return int(self._cells.size)

    def nearest(self, lat: float, lng: float, n: int, radius_m: float) -> Neighbours:
        """The ``n`` points nearest to ``(lat, lng)`` within ``radius_m`` (inclusive), nearest first."""
        _validate_query(lat, lng, n, radius_m)
        if n == 0 or not len(self):
            return _top_n(_EMPTY_INT, _EMPTY_FLOAT, 0, self._order, self._ids)
        query_xyz = _unit_tuple(lat, lng)
        query = np.array(query_xyz)
        radius_c2 = m_to_chord2(radius_m)
        finest = h3i.latlng_to_cell(lat, lng, FINEST_RESOLUTION)
        plan_res, plan_rings = self._plans(np.array([finest], dtype=np.uint64), n, radius_m)
        res, k = int(plan_res[0]), int(plan_rings[0])
        origin = h3i.cell_to_parent(finest, res)
        positions = self._positions_in(_disk(origin, k), res)
        chord2 = _chord2(self._xyz.take(positions, axis=0), query)
        within = chord2 <= radius_c2
        positions, chord2 = positions[within], chord2[within]
        while True:
            unseen_at_least = _ring_lower_bound_m(query_xyz, origin, k + 1)
            if unseen_at_least > radius_m:
                break
            if unseen_at_least > 0 and np.count_nonzero(chord2 < m_to_chord2(unseen_at_least)) >= n:
                break
            k += 1
            more = self._positions_in(_ring(origin, k), res)
            more_c2 = _chord2(self._xyz.take(more, axis=0), query)
            within = more_c2 <= radius_c2
            positions = np.concatenate((positions, more[within]))
            chord2 = np.concatenate((chord2, more_c2[within]))
        return _top_n(positions, chord2, n, self._order, self._ids)

    def nearest_many(
        self, lats: npt.ArrayLike, lngs: npt.ArrayLike, n: int, radius_m: float
    ) -> list[Neighbours]:
        """:meth:`nearest` for many query points at once (e.g. a dispatch round's pickups).

        The same answers, faster: every query's first pass (plan, disk, exact
        distances, ring bound, stopping test) runs as a few vectorised steps over
        all queries; the rare query that the first disk does not settle continues
        alone through :meth:`nearest`.
        """
        lat_arr = np.asarray(lats, dtype=np.float64).reshape(-1)
        lng_arr = np.asarray(lngs, dtype=np.float64).reshape(-1)
        points = list(zip(lat_arr.tolist(), lng_arr.tolist(), strict=True))
        for lat, lng in points:
            _validate_query(lat, lng, n, radius_m)
        if n == 0 or not len(self) or not points:
            return [self.nearest(lat, lng, n, radius_m) for lat, lng in points]
        queries = np.array([_unit_tuple(lat, lng) for lat, lng in points], dtype=np.float64)
        finest = np.array(
            [h3i.latlng_to_cell(lat, lng, FINEST_RESOLUTION) for lat, lng in points], dtype=np.uint64
        )
        plan_res, plan_rings = self._plans(finest, n, radius_m)
        origins = [
            h3i.cell_to_parent(cell, res)
            for cell, res in zip(finest.tolist(), plan_res.tolist(), strict=True)
        ]
        # exact distances to the points of every query's first disk
        disks = [_disk(origin, k) for origin, k in zip(origins, plan_rings.tolist(), strict=True)]
        cells = np.concatenate(disks)
        cell_query = np.repeat(np.arange(len(points)), [disk.size for disk in disks])
        cell_res = plan_res[cell_query]
        lo = np.empty(cells.size, dtype=np.int64)
        hi = np.empty(cells.size, dtype=np.int64)
        for res in np.unique(plan_res).tolist():
            at = cell_res == res
            lo[at], hi[at] = self._range_of(cells[at], res)
        lengths = hi - lo
        positions = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(
            lo - (np.cumsum(lengths) - lengths), lengths
        )
        owner = np.repeat(cell_query, lengths)
        chord2 = _chord2(self._xyz.take(positions, axis=0), queries[owner])
        within = chord2 <= m_to_chord2(radius_m)
        positions, owner, chord2 = positions[within], owner[within], chord2[within]
        # every query's lower bound on unseen points, from the ring just outside its disk
        reach = np.array(
            [_ring_reach(origin, k + 1) for origin, k in zip(origins, plan_rings.tolist(), strict=True)]
        )
        to_origin = chord2_to_m(_chord2(queries.copy(), reach[:, :3]))
        unseen_at_least = reach[:, 3] - to_origin - _BOUND_MARGIN_M
        threshold = np.where(
            unseen_at_least > 0,
            (2.0 * np.sin(np.maximum(unseen_at_least, 0) / EARTH_RADIUS_M * 0.5)) ** 2,
            -1.0,
        )
        sure = np.bincount(owner[chord2 < threshold[owner]], minlength=len(points))
        settled = (unseen_at_least > radius_m) | (sure >= n)
        # candidates are grouped by query already (disks were laid out query by query)
        starts = np.searchsorted(owner, np.arange(len(points) + 1))
        answers = []
        for i, (lat, lng) in enumerate(points):
            if settled[i]:
                mine = slice(starts[i], starts[i + 1])
                answers.append(_top_n(positions[mine], chord2[mine], n, self._order, self._ids))
            else:
                answers.append(self.nearest(lat, lng, n, radius_m))
        return answers

    def _plans(self, finest: npt.NDArray[np.uint64], n: int, radius_m: float) -> tuple[IntArray, IntArray]:
        """Resolution and first disk size per query; a speed heuristic only (exactness never depends on it).

        Counts the points in every ancestor of each query's finest cell (one
        binary search for all) and takes the finest ancestor holding at least
        ``n``: its n-th point lies within about one edge length, which a 3-ring
        disk one resolution finer usually covers in a single pass. Local counts,
        not a city-wide density, so dense hubs and empty suburbs both stay cheap.
        When a query's surroundings are sparse for ``R``, cover ``R`` directly instead.
        """
        first = finest[:, None] & _ANCESTOR_KEEP[None, :]
        lo = np.searchsorted(self._cells, (first - _ONE).ravel(), "right").reshape(first.shape)
        hi = np.searchsorted(self._cells, (first | _ANCESTOR_SIXES[None, :]).ravel(), "right").reshape(
            first.shape
        )
        finest_dense = (
            COARSEST_RESOLUTION - 1 + np.count_nonzero(hi - lo >= n, axis=1)
        )  # counts shrink as res grows
        resolutions = range(FINEST_RESOLUTION, COARSEST_RESOLUTION - 1, -1)
        covering = next((res for res in resolutions if _COVERS[res] >= radius_m), COARSEST_RESOLUTION)
        sparse = finest_dense < covering
        res = np.where(sparse, covering, np.minimum(finest_dense + 1, FINEST_RESOLUTION))
        rings = np.where(sparse, RINGS_TO_COVER_RADIUS, np.where(finest_dense < FINEST_RESOLUTION, 3, 2))
        return res.astype(np.int64), rings.astype(np.int64)

    def _range_of(self, cells: npt.NDArray[np.uint64], res: int) -> tuple[IntArray, IntArray]:
        """Slices of the sorted array holding the descendants of ``cells`` (all at resolution ``res``).

        One binary search for both ends: ``first - 1`` searched rightwards is ``first`` searched leftwards.
        """
        digit_mask, sixes = _DESCENDANT_MASKS[res]
        first = (cells & digit_mask) | _FINEST_RES_BITS
        bounds = np.searchsorted(self._cells, np.concatenate((first - _ONE, first | sixes)), side="right")
        return bounds[: cells.size], bounds[cells.size :]

    def _positions_in(self, cells: npt.NDArray[np.uint64], res: int) -> IntArray:
        lo, hi = self._range_of(cells, res)
        lengths = hi - lo
        total = int(lengths.sum())
        if total == 0:
            return _EMPTY_INT
        starts_in_output = np.cumsum(lengths) - lengths
        positions: IntArray = np.arange(total, dtype=np.int64) + np.repeat(lo - starts_in_output, lengths)
        return positions


def _validate_query(lat: float, lng: float, n: int, radius_m: float) -> None:
    validate_coordinates(lat, lng)
    if n < 0:
        raise ValueError("n must be zero or more")
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise ValueError(f"radius_m must be in (0, {MAX_RADIUS_M:.0f}]")


def _unit_vector(lat: float, lng: float) -> FloatArray:
    return np.array(_unit_tuple(lat, lng))


def _chord2(xyz: FloatArray, query: FloatArray) -> FloatArray:
    """Squared chord lengths; ``xyz`` is a fresh gather, so it is reused in place."""
    xyz -= query
    xyz *= xyz
    return np.asarray(xyz.sum(axis=1), dtype=np.float64)


def _top_n(
    positions: IntArray, chord2: FloatArray, n: int, order: IntArray, ids: npt.NDArray[Any]
) -> Neighbours:
    """The n best by (distance, input position); ``order`` maps ``positions`` to input positions."""
    if chord2.size > n > 0:  # only the n best and whatever ties the n-th need a full sort
        chosen = np.flatnonzero(chord2 <= np.partition(chord2, n - 1)[n - 1])
        positions, chord2 = positions[chosen], chord2[chosen]
    input_positions = order[positions]
    best = np.lexsort((input_positions, chord2))[:n]
    return Neighbours(
        positions=input_positions[best], ids=ids[positions[best]], distances_m=chord2_to_m(chord2[best])
    )


@lru_cache(maxsize=1 << 16)
def _disk(origin: int, k: int) -> npt.NDArray[np.uint64]:
    return np.array(h3i.grid_disk(origin, k), dtype=np.uint64)


@lru_cache(maxsize=1 << 16)
def _ring(origin: int, k: int) -> npt.NDArray[np.uint64]:
    """Cells at grid distance exactly ``k``; near a pentagon the fast ring walk fails, so diff the disks."""
    try:
        cells = list(h3i.grid_ring(origin, k))
    except H3BaseException:
        inner = set(h3i.grid_disk(origin, k - 1))
        cells = [cell for cell in h3i.grid_disk(origin, k) if cell not in inner]
    return np.array(cells, dtype=np.uint64)


@lru_cache(maxsize=1 << 19)
def _cell_geometry(cell: int) -> tuple[float, float, float, float]:
    """Unit vector of a cell's centre and its circumradius in metres (plain floats: cheap when cold).

    Shared by every ring that contains the cell, and a city has a bounded number
    of cells, so a long-running service soon has them all.
    """
    cx, cy, cz = _unit_tuple(*h3i.cell_to_latlng(cell))
    farthest2 = 0.0
    for vertex in h3i.cell_to_boundary(cell):
        vx, vy, vz = _unit_tuple(*vertex)
        farthest2 = max(farthest2, (vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
    return cx, cy, cz, 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(farthest2) * 0.5))


def _unit_tuple(lat: float, lng: float) -> tuple[float, float, float]:
    lat_r, lng_r = math.radians(lat), math.radians(lng)
    cos_lat = math.cos(lat_r)
    return cos_lat * math.cos(lng_r), cos_lat * math.sin(lng_r), math.sin(lat_r)


@lru_cache(maxsize=1 << 16)
def _ring_reach(origin: int, k: int) -> tuple[float, float, float, float]:
    """The origin cell's centre (unit vector) and ``B``, the least ``d(centre(origin), centre(c)) - rad(c)``
    over the cells ``c`` of ring ``k``, in metres.

    For a query ``q`` in the origin cell and a point ``x`` in a ring-``k`` cell ``c``,
    ``d(q, x) >= d(q, centre(c)) - rad(c) >= d(centre(origin), centre(c)) - d(q, centre(origin)) - rad(c)``,
    so ``B - d(q, centre(origin))`` bounds every ring-``k`` point from below: one
    subtraction per query instead of one distance per ring cell.
    """
    ox, oy, oz, _ = _cell_geometry(origin)
    reach = math.inf
    for cell in _ring(origin, k).tolist():
        cx, cy, cz, radius = _cell_geometry(cell)
        chord = math.sqrt((cx - ox) ** 2 + (cy - oy) ** 2 + (cz - oz) ** 2)
        reach = min(reach, 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5)) - radius)
    return ox, oy, oz, reach


def _ring_lower_bound_m(query: tuple[float, float, float], origin: int, k: int) -> float:
    """No point beyond ring ``k - 1`` of ``origin`` is closer to ``query`` than this (metres)."""
    ox, oy, oz, reach = _ring_reach(origin, k)
    chord = math.sqrt((query[0] - ox) ** 2 + (query[1] - oy) ** 2 + (query[2] - oz) ** 2)
    return reach - 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5)) - _BOUND_MARGIN_M


def _descendant_masks(res: int) -> tuple[np.uint64, np.uint64]:
    """Bit masks turning a cell at ``res`` into its first and last descendant at the finest resolution.

    An H3 index holds the resolution in bits 52-55 and one 3-bit digit per
    resolution below it (coarse first, 7 = unused); descendants fill the digits
    ``res+1 .. finest`` with 0 (first) to 6 (last).
    """
    shift = (15 - FINEST_RESOLUTION) * 3
    digits = (FINEST_RESOLUTION - res) * 3
    keep = ~(_RES_MASK | (((1 << digits) - 1) << shift)) & 0xFFFF_FFFF_FFFF_FFFF
    sixes = sum(6 << (shift + 3 * i) for i in range(FINEST_RESOLUTION - res))
    return np.uint64(keep), np.uint64(sixes)


_EMPTY_INT: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT: FloatArray = np.zeros(0, dtype=np.float64)
_ONE = np.uint64(1)
_FINEST_RES_BITS = np.uint64(FINEST_RESOLUTION << _RES_SHIFT)
_DESCENDANT_MASKS = {res: _descendant_masks(res) for res in range(FINEST_RESOLUTION + 1)}
_COVERS = [RINGS_TO_COVER_RADIUS * 1.5 * h3i.average_hexagon_edge_length(res, "m") for res in range(16)]
"""Roughly the radius a disk of RINGS_TO_COVER_RADIUS rings covers: each ring adds about 1.5 edge lengths."""
_ANCESTORS = FINEST_RESOLUTION - COARSEST_RESOLUTION + 1
_LEVELS = range(COARSEST_RESOLUTION, FINEST_RESOLUTION + 1)
_ANCESTOR_KEEP = np.array([int(_DESCENDANT_MASKS[res][0]) | _RES_MASK for res in _LEVELS], dtype=np.uint64)
_ANCESTOR_SIXES = np.array([int(_DESCENDANT_MASKS[res][1]) for res in _LEVELS], dtype=np.uint64)
