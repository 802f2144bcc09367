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
ring 1, ... For every ring it computes exact distances for the points of the
new cells and a lower bound ``L`` on the distance from the query to any point
*not yet seen*. The walk is compiled (:mod:`nearx.proximity_loops`). At build
time the index tabulates the cells near its points (:func:`_cell_table`: each
cell's centre, circumradius and neighbours, resolutions 4-10, up to
:data:`PRECOMPUTED_RINGS` rings out), so a query is h3-py's ``latlng_to_cell``,
the plan and one compiled call, on its first visit to an area as on its
hundredth; before, a first visit computed a dozen cells' geometry through
h3-py (~35-45 µs), and that was the p99. A walk that leaves the table (an
origin at the finest resolution, rings past the tabulated ones) or an index
built without it walks with h3-py's disks and rings instead, cached per cell:
the same cells, the same bounds, the same answer.

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
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt
from h3 import H3BaseException

from nearx import proximity_loops as loops
from nearx.geo import validate_coordinates

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

PRECOMPUTED_FINEST_RESOLUTION = FINEST_RESOLUTION - 1
"""The cell table covers resolutions up to this one (see :func:`_cell_table` for why not the finest)."""

PRECOMPUTED_RINGS = 3
"""Cells within this many rings of a cell holding points are in the cell table: a plan's 1-ring disk
needs rings 2 and 3 for the bounds of its first two steps (99 % of queries take one step)."""

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
    values = np.asarray(chord2, dtype=np.float64)
    return loops.chord2_to_m(np.ascontiguousarray(values.reshape(-1))).reshape(values.shape)


def m_to_chord2(metres: float) -> float:
    """Inverse of :func:`chord2_to_m` for one distance (thresholds: R, the stacking radius)."""
    return float(loops.m_to_chord2(metres))


def nearest_brute_force(
    lats: npt.ArrayLike, lngs: npt.ArrayLike, lat: float, lng: float, n: int, radius_m: float
) -> Neighbours:
    """The exhaustive answer (every distance computed): the oracle in tests and the baseline in bench/.

    Independent of the index's code except for the arithmetic of a distance,
    which is written out in the same order as in :mod:`nearx.proximity_loops`.
    """
    _validate_query(lat, lng, n, radius_m)
    diff = unit_vectors(lats, lngs) - np.array(loops.unit(lat, lng))
    chord2 = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
    positions = np.flatnonzero(chord2 <= m_to_chord2(radius_m))
    best = positions[np.lexsort((positions, chord2[positions]))[:n]]
    return Neighbours(positions=best, ids=best, distances_m=chord2_to_m(chord2[best]))


class ProximityIndex:
    """An immutable snapshot of points (e.g. the couriers online now, the merchants open now).

    Build a fresh one per change batch: building sorts once (O(n log n), dominated
    by H3) and tabulates the cells near the points (~0.5-0.9 s at 10k-200k points
    in a city, ~1.7 s at 1M); a dispatch round's index skips the table
    (``precompute_geometry=False``, ~0.15 s per million points). A query touches
    only the points of the cells it scans.
    """

    def __init__(
        self,
        lats: npt.ArrayLike,
        lngs: npt.ArrayLike,
        ids: npt.ArrayLike | None = None,
        *,
        precompute_geometry: bool = True,
        geometry_of: ProximityIndex | None = None,
    ) -> None:
        """``precompute_geometry`` builds the table of the cells near the points (:func:`_cell_table`)
        so that a query is one compiled call, even on its first visit to an area; it costs
        ~0.3-0.7 s per build for a city. An index rebuilt every few seconds for a few thousand
        queries (a dispatch round) passes False: it walks with h3-py, whose disks, rings and cell
        geometry are cached per cell across rebuilds.

        ``geometry_of``: an index over a superset of these points (the city's, for one category's)
        whose table this one shares; only each cell's range of points is computed again, in
        milliseconds. (A point outside the superset still gets exact answers: a walk that leaves
        the table continues with h3-py.)
        """
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
        shared = geometry_of._table if geometry_of is not None else None
        if shared is not None:
            self._table: _CellTable | None = _with_ranges(shared, self._cells)
        else:
            self._table = _cell_table(self._cells) if precompute_geometry else None
        # with a table, plans stop at its finest resolution (below): a walk from there stays compiled
        finest_origin = PRECOMPUTED_FINEST_RESOLUTION if self._table is not None else FINEST_RESOLUTION
        levels = slice(0, finest_origin - COARSEST_RESOLUTION + 1)
        self._origins = (finest_origin, _ANCESTOR_KEEP[levels], _ANCESTOR_SIXES[levels])

    def __len__(self) -> int:
        return int(self._cells.size)

    def nearest(self, lat: float, lng: float, n: int, radius_m: float) -> Neighbours:
        """The ``n`` points nearest to ``(lat, lng)`` within ``radius_m`` (inclusive), nearest first."""
        _validate_query(lat, lng, n, radius_m)
        return self._nearest(lat, lng, n, radius_m)

    def nearest_many(
        self, lats: npt.ArrayLike, lngs: npt.ArrayLike, n: int, radius_m: float
    ) -> list[Neighbours]:
        """:meth:`nearest` for many query points (e.g. a dispatch round's pickups), all validated first."""
        points = list(
            zip(
                np.asarray(lats, dtype=np.float64).reshape(-1).tolist(),
                np.asarray(lngs, dtype=np.float64).reshape(-1).tolist(),
                strict=True,
            )
        )
        for lat, lng in points:
            _validate_query(lat, lng, n, radius_m)
        return [self._nearest(lat, lng, n, radius_m) for lat, lng in points]

    def _nearest(self, lat: float, lng: float, n: int, radius_m: float) -> Neighbours:
        """The ring walk of the module docstring: the plan, then one compiled call over the cell
        table, or (no table, or a walk that leaves it) one compiled call per ring with h3-py."""
        if n == 0 or not len(self):
            return Neighbours(positions=_EMPTY_INT, ids=self._ids[:0], distances_m=_EMPTY_FLOAT)
        finest = h3i.latlng_to_cell(lat, lng, FINEST_RESOLUTION)
        res, k = self._plan(finest, n, radius_m)
        if self._table is not None:
            done, first, second, third = loops.walk(
                self._xyz,
                self._order,
                self._table.cells,
                self._table.geometry,
                self._table.lo,
                self._table.hi,
                self._table.neighbours,
                self._table.complete,
                finest,
                k,
                lat,
                lng,
                n,
                radius_m,
                _PARENT_MASKS[res][0],
                _PARENT_MASKS[res][1],
                _BOUND_MARGIN_M,
            )
            if done:
                return Neighbours(positions=first, ids=self._ids[second], distances_m=third)
        digit_keep, sixes = _DESCENDANT_MASKS[res]
        origin = h3i.cell_to_parent(finest, res)
        cells = _disk(origin, k)
        positions, chord2 = _EMPTY_INT, _EMPTY_FLOAT
        while True:
            done, first, second, third = loops.step(
                self._cells,
                self._xyz,
                self._order,
                cells,
                digit_keep,
                sixes,
                _FINEST_RES_BITS,
                lat,
                lng,
                radius_m,
                _ring_reach(origin, k + 1),
                _BOUND_MARGIN_M,
                n,
                positions,
                chord2,
            )
            if done:
                return Neighbours(positions=first, ids=self._ids[second], distances_m=third)
            positions, chord2 = first, third
            k += 1
            cells = _ring(origin, k)

    def _plan(self, finest: int, n: int, radius_m: float) -> tuple[int, int]:
        """Resolution and first disk size; a speed heuristic only (exactness never depends on it).

        Counts the points in every ancestor of the query's finest cell (two
        binary searches each) and starts from the finest ancestor holding at
        least ``n`` and its neighbours (a 1-ring disk): the n-th point usually
        lies within it, so one pass settles most queries. Origins this coarse are
        few, so their cached disks and ring bounds are reused (an origin one
        resolution finer with a 3-ring disk scanned fewer points but missed those
        caches on half the queries, and was 1.5-2x slower).
        Local counts, not a city-wide density, so dense hubs and empty suburbs
        both stay cheap. When the surroundings are sparse for ``R``, cover ``R``
        directly instead.

        With a cell table, origins stop at its finest resolution: at 1M points
        ~4 % of queries started from a finest cell (25 m, ``n`` points in a hub)
        and walked with h3-py, at ~100-150 µs on a first visit, which made the
        p99; a 1-ring disk one resolution coarser scans ~7x more points in the
        densest hubs (a few µs in compiled code).
        """
        finest_origin, ancestor_keep, ancestor_sixes = self._origins
        res, rings = loops.plan(
            self._cells,
            finest,
            ancestor_keep,
            ancestor_sixes,
            n,
            COARSEST_RESOLUTION,
            min(_covering_resolution(radius_m), finest_origin),
            RINGS_TO_COVER_RADIUS,
        )
        return res, rings


def _validate_query(lat: float, lng: float, n: int, radius_m: float) -> None:
    validate_coordinates(lat, lng)
    if n < 0:
        raise ValueError("n must be zero or more")
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise ValueError(f"radius_m must be in (0, {MAX_RADIUS_M:.0f}]")


@lru_cache(maxsize=256)
def _covering_resolution(radius_m: float) -> int:
    """The finest resolution whose disk of RINGS_TO_COVER_RADIUS rings covers about ``radius_m``."""
    resolutions = range(FINEST_RESOLUTION, COARSEST_RESOLUTION - 1, -1)
    return next((res for res in resolutions if _COVERS[res] >= radius_m), COARSEST_RESOLUTION)


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
    ring = np.array([_cell_geometry(cell) for cell in _ring(origin, k).tolist()], dtype=np.float64)
    return ox, oy, oz, loops.ring_reach(ring, ox, oy, oz)


@lru_cache(maxsize=1 << 19)
def _cell_geometry(cell: int) -> tuple[float, float, float, float]:
    """Unit vector of a cell's centre and its circumradius in metres (as the rows of :func:`_cell_table`)."""
    lat, lng = h3i.cell_to_latlng(cell)
    boundary = np.array(h3i.cell_to_boundary(cell), dtype=np.float64)
    geometry: tuple[float, float, float, float] = loops.cell_geometry(lat, lng, boundary)
    return geometry


@dataclass(frozen=True, slots=True)
class _CellTable:
    """The cells near an index's points, sorted, with what the compiled walk needs of each.

    ``geometry`` rows are centre unit vector and circumradius (as :func:`_cell_geometry`);
    a cell's points are ``lo:hi`` of the index's sorted arrays; ``neighbours`` rows are
    table rows of the grid neighbours (-1 pads a pentagon's five); ``complete`` tells
    whether all of a cell's neighbours are in the table (the walk needs that to grow a
    ring past it).
    """

    cells: npt.NDArray[np.uint64]
    geometry: FloatArray
    lo: IntArray
    hi: IntArray
    neighbours: IntArray
    complete: npt.NDArray[np.bool_]


def _cell_table(sorted_cells: npt.NDArray[np.uint64]) -> _CellTable:
    """The cells within :data:`PRECOMPUTED_RINGS` of an ancestor of ``sorted_cells``, resolutions
    :data:`COARSEST_RESOLUTION` to :data:`PRECOMPUTED_FINEST_RESOLUTION`.

    Not the finest resolution: an origin there needs ``n`` points in one ~25 m
    cell (rare unless ``n`` is tiny), and that resolution alone holds ~85 % of
    the cells near the points, which would make the build ~5x slower; such
    queries walk with h3-py, cached per cell.
    """
    near: set[int] = set()
    for res in range(COARSEST_RESOLUTION, PRECOMPUTED_FINEST_RESOLUTION + 1):
        for origin in np.unique(_parents(sorted_cells, res)).tolist():
            near.update(h3i.grid_disk(origin, PRECOMPUTED_RINGS))
    cells = np.array(sorted(near), dtype=np.uint64)
    listed = cells.tolist()
    boundaries = [h3i.cell_to_boundary(cell) for cell in listed]
    offsets = np.zeros(cells.size + 1, dtype=np.int64)
    np.cumsum([len(boundary) for boundary in boundaries], out=offsets[1:])
    geometry = loops.cells_geometry(
        np.array([h3i.cell_to_latlng(cell) for cell in listed], dtype=np.float64).reshape(-1, 2),
        np.array([vertex for boundary in boundaries for vertex in boundary], dtype=np.float64).reshape(-1, 2),
        offsets,
    )
    around = np.zeros((cells.size, 6), dtype=np.uint64)  # 0 is no H3 cell: a pentagon's missing sixth
    for row, cell in enumerate(listed):
        others = [other for other in h3i.grid_disk(cell, 1) if other != cell]
        around[row, : len(others)] = others
    rows = np.minimum(np.searchsorted(cells, around), max(cells.size - 1, 0))
    present = cells[rows] == around
    neighbours = np.where(present, rows, -1).astype(np.int64)
    lo, hi = _point_ranges(cells, sorted_cells)
    return _CellTable(cells, geometry, lo, hi, neighbours, (present | (around == 0)).all(axis=1))


def _with_ranges(table: _CellTable, sorted_cells: npt.NDArray[np.uint64]) -> _CellTable:
    """``table``'s cells and geometry with the ranges of another index's points."""
    lo, hi = _point_ranges(table.cells, sorted_cells)
    return replace(table, lo=lo, hi=hi)


def _point_ranges(
    cells: npt.NDArray[np.uint64], sorted_cells: npt.NDArray[np.uint64]
) -> tuple[IntArray, IntArray]:
    """Per table cell (any resolution), its descendants' run ``lo:hi`` in ``sorted_cells``."""
    lo, hi = np.zeros(cells.size, dtype=np.int64), np.zeros(cells.size, dtype=np.int64)
    resolutions = (cells >> np.uint64(_RES_SHIFT)) & np.uint64(0xF)
    for res in np.unique(resolutions).tolist():
        at = np.flatnonzero(resolutions == res)
        lo[at], hi[at] = loops.runs(sorted_cells, cells[at], *_DESCENDANT_MASKS[res], _FINEST_RES_BITS)
    return lo, hi


def _parents(cells: npt.NDArray[np.uint64], res: int) -> npt.NDArray[np.uint64]:
    """``h3.cell_to_parent`` of many cells (all at a resolution >= ``res``) at once."""
    ancestors: npt.NDArray[np.uint64] = (cells & _PARENT_KEEP[res]) | _PARENT_FILL[res]
    return ancestors


def _parent_masks(res: int) -> tuple[int, int]:
    """Masks turning a finer cell into its ancestor at ``res``: clear the resolution and the digits
    below ``res``, then set the resolution and fill those digits with 7 (unused)."""
    below = sum(7 << ((15 - digit) * 3) for digit in range(res + 1, 16))
    return ~(_RES_MASK | below) & 0xFFFF_FFFF_FFFF_FFFF, (res << _RES_SHIFT) | below


def _descendant_masks(res: int) -> tuple[int, int]:
    """Bit masks turning a cell at ``res`` into its first and last descendant at the finest resolution.

    An H3 index holds the resolution in bits 52-55 and one 3-bit digit per
    resolution below it (coarse first, 7 = unused); descendants fill the digits
    ``res+1 .. finest`` with 0 (first) to 6 (last). Plain ints: numba types them
    faster than NumPy scalars on every call.
    """
    shift = (15 - FINEST_RESOLUTION) * 3
    digits = (FINEST_RESOLUTION - res) * 3
    keep = ~(_RES_MASK | (((1 << digits) - 1) << shift)) & 0xFFFF_FFFF_FFFF_FFFF
    sixes = sum(6 << (shift + 3 * i) for i in range(FINEST_RESOLUTION - res))
    return keep, sixes


_EMPTY_INT: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT: FloatArray = np.zeros(0, dtype=np.float64)
_FINEST_RES_BITS = FINEST_RESOLUTION << _RES_SHIFT
_DESCENDANT_MASKS = {res: _descendant_masks(res) for res in range(FINEST_RESOLUTION + 1)}
_COVERS = [RINGS_TO_COVER_RADIUS * 1.5 * h3i.average_hexagon_edge_length(res, "m") for res in range(16)]
"""Roughly the radius a disk of RINGS_TO_COVER_RADIUS rings covers: each ring adds about 1.5 edge lengths."""
_LEVELS = range(COARSEST_RESOLUTION, FINEST_RESOLUTION + 1)
_ANCESTOR_KEEP = np.array([_DESCENDANT_MASKS[res][0] | _RES_MASK for res in _LEVELS], dtype=np.uint64)
_ANCESTOR_SIXES = np.array([_DESCENDANT_MASKS[res][1] for res in _LEVELS], dtype=np.uint64)
_PARENT_MASKS = [_parent_masks(res) for res in range(16)]
_PARENT_KEEP, _PARENT_FILL = (np.array(masks, dtype=np.uint64) for masks in zip(*_PARENT_MASKS, strict=True))
