"""The inner loops of :mod:`nearx.proximity`, compiled with numba.

A query's work is small (a few dozen cells, a few hundred points), so in NumPy
it was dominated by the fixed cost of ~40 small array calls (~50 µs a query on
a quiet machine, several times that when the caches are cold, e.g. between
database calls). Here a query is one compiled call, :func:`walk` (rings grown
from the index's cell table, then per ring: scan the cells, test the stopping
rule, pick the top N), after :func:`plan`; without the table (or past its edge)
:func:`step` runs once per ring with disks and rings from h3-py.

The distance arithmetic is written out once, here, and the brute-force oracle
(:func:`nearx.proximity.nearest_brute_force`) uses the same order of operations
and the same :func:`chord2_to_m`, so their distances agree bit for bit.

Signatures are explicit, so each function is compiled once, for these types
only, when this module is imported; ``cache=True`` stores the machine code next
to the module, so later imports load it instead of compiling (about 8 s the
first time on this machine). Numba bakes module-level constants such as
``EARTH_RADIUS_M`` into the machine code; that one is a constant of nature here.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from nearx.geo import EARTH_RADIUS_M

UIntArray = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Geometry = tuple[float, float, float, float]


@njit("UniTuple(f8, 3)(f8, f8)", cache=True)
def unit(lat: float, lng: float) -> tuple[float, float, float]:
    """A point as a 3-D unit vector (degrees in)."""
    lat_r, lng_r = math.radians(lat), math.radians(lng)
    cos_lat = math.cos(lat_r)
    return cos_lat * math.cos(lng_r), cos_lat * math.sin(lng_r), math.sin(lat_r)


@njit("f8[::1](f8[::1])", cache=True)
def chord2_to_m(chord2: FloatArray) -> FloatArray:
    """Great-circle metres from squared chords on the unit sphere."""
    metres = np.empty_like(chord2)
    for i in range(chord2.size):
        metres[i] = 2.0 * EARTH_RADIUS_M * math.asin(min(math.sqrt(chord2[i]) * 0.5, 1.0))
    return metres


@njit("f8(f8)", cache=True)
def m_to_chord2(metres: float) -> float:
    """Inverse of :func:`chord2_to_m` for one distance."""
    angle = min(metres / EARTH_RADIUS_M, math.pi)
    return (2.0 * math.sin(angle * 0.5)) ** 2


@njit("UniTuple(i8, 2)(u8[::1], u8, u8[::1], u8[::1], i8, i8, i8, i8)", cache=True)
def plan(
    sorted_cells: UIntArray,
    finest: int,
    ancestor_keep: UIntArray,
    ancestor_sixes: UIntArray,
    n: int,
    coarsest: int,
    covering: int,
    covering_rings: int,
) -> tuple[int, int]:
    """Resolution and first disk size for a query in cell ``finest`` (see ``ProximityIndex._plan`` for why).

    ``ancestor_keep[j]`` / ``ancestor_sixes[j]`` turn a finest cell into the first /
    last finest descendant of its ancestor at resolution ``coarsest + j``.
    """
    dense = coarsest - 1  # the finest resolution whose ancestor holds >= n points
    for j in range(ancestor_keep.size):  # counts shrink as the resolution grows
        first = finest & ancestor_keep[j]
        lo = np.searchsorted(sorted_cells, first, side="left")
        hi = np.searchsorted(sorted_cells, first | ancestor_sixes[j], side="right")
        if hi - lo < n:
            break
        dense = coarsest + j
    if dense < covering:
        return covering, covering_rings
    return dense, 1


@njit("f8(f8, f8, f8, f8, f8, f8)", cache=True, inline="always")
def _chord2(x: float, y: float, z: float, qx: float, qy: float, qz: float) -> float:
    """Squared chord from coordinate differences (full relative precision at metre scale)."""
    dx, dy, dz = x - qx, y - qy, z - qz
    return dx * dx + dy * dy + dz * dz


@njit("Tuple((i8[::1], i8[::1]))(u8[::1], u8[::1], u8, u8, u8)", cache=True)
def runs(
    sorted_cells: UIntArray, cells: UIntArray, digit_keep: int, sixes: int, finest_bits: int
) -> tuple[IntArray, IntArray]:
    """Where the points of each of ``cells`` (one resolution) lie in ``sorted_cells``: ``lo[i]:hi[i]``.

    A cell's descendants are one run of ``sorted_cells``: from ``(cell & digit_keep) |
    finest_bits`` to that ``| sixes``.
    """
    lo = np.empty(cells.size, dtype=np.int64)
    hi = np.empty(cells.size, dtype=np.int64)
    for i in range(cells.size):
        first = (cells[i] & digit_keep) | finest_bits
        lo[i] = np.searchsorted(sorted_cells, first, side="left")
        hi[i] = np.searchsorted(sorted_cells, first | sixes, side="right")
    return lo, hi


@njit(cache=True)
def _scan(
    xyz: FloatArray, lo: IntArray, hi: IntArray, query: tuple[float, float, float], radius_c2: float
) -> tuple[IntArray, FloatArray]:
    """Positions and squared chords of the points in the runs ``lo[i]:hi[i]`` within ``radius_c2``."""
    total = 0
    for i in range(lo.size):
        total += hi[i] - lo[i]
    positions = np.empty(total, dtype=np.int64)
    chord2 = np.empty(total, dtype=np.float64)
    found = 0
    qx, qy, qz = query
    for i in range(lo.size):
        for p in range(lo[i], hi[i]):
            c2 = _chord2(xyz[p, 0], xyz[p, 1], xyz[p, 2], qx, qy, qz)
            if c2 <= radius_c2:
                positions[found] = p
                chord2[found] = c2
                found += 1
    return positions[:found], chord2[:found]


@njit(cache=True)
def _top_n(
    positions: IntArray, chord2: FloatArray, n: int, order: IntArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """The ``n`` best candidates by ``(chord2, input position)``; ``order`` maps positions to input positions.

    Returns input positions, sorted-array positions and squared chords, best first.
    """
    if chord2.size > n > 0:  # only the n best and whatever ties the n-th need a full sort
        kept = chord2 <= np.partition(chord2, n - 1)[n - 1]
        positions, chord2 = positions[kept], chord2[kept]
    inputs = order[positions]
    by_input = np.argsort(inputs)  # input positions are unique
    best = by_input[np.argsort(chord2[by_input], kind="mergesort")[:n]]  # stable: ties stay by input
    return inputs[best], positions[best], chord2[best]


@njit(cache=True, inline="always")
def _advance(
    xyz: FloatArray,
    order: IntArray,
    lo: IntArray,
    hi: IntArray,
    query: tuple[float, float, float],
    radius_m: float,
    keep_c2: float,
    reach: Geometry,
    margin_m: float,
    n: int,
    seen_positions: IntArray,
    seen_chord2: FloatArray,
) -> tuple[bool, IntArray, IntArray, FloatArray]:
    """The body of :func:`step` (shared with :func:`walk`), for a query given as a unit vector.

    Candidates are the points within ``keep_c2`` (R's squared chord, or less when
    :func:`walk` knows that no point farther can make the top N)."""
    qx, qy, qz = query
    ox, oy, oz, outside = reach
    chord = math.sqrt((qx - ox) ** 2 + (qy - oy) ** 2 + (qz - oz) ** 2)
    unseen_at_least = outside - 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5)) - margin_m
    sure_c2 = m_to_chord2(unseen_at_least) if unseen_at_least > 0 else -1.0
    positions, chord2 = _scan(xyz, lo, hi, query, keep_c2)
    positions = np.concatenate((seen_positions, positions))
    chord2 = np.concatenate((seen_chord2, chord2))
    if unseen_at_least > radius_m or np.count_nonzero(chord2 < sure_c2) >= n:
        inputs, best, best_c2 = _top_n(positions, chord2, n, order)
        return True, inputs, best, chord2_to_m(best_c2)
    return False, positions, positions, chord2


@njit(
    "Tuple((b1, i8[::1], i8[::1], f8[::1]))(u8[::1], f8[:, ::1], i8[::1], u8[::1], u8, u8, u8, "
    "f8, f8, f8, UniTuple(f8, 4), f8, i8, i8[::1], f8[::1])",
    cache=True,
)
def step(
    sorted_cells: UIntArray,
    xyz: FloatArray,
    order: IntArray,
    cells: UIntArray,
    digit_keep: int,
    sixes: int,
    finest_bits: int,
    lat: float,
    lng: float,
    radius_m: float,
    reach: Geometry,
    margin_m: float,
    n: int,
    seen_positions: IntArray,
    seen_chord2: FloatArray,
) -> tuple[bool, IntArray, IntArray, FloatArray]:
    """One ring of the walk: add the points of ``cells`` within ``radius_m``, then stop or go on.

    ``reach`` is ``_ring_reach`` of the ring just outside: the origin's centre and
    ``B``, so the unseen points are at least ``B - d(query, centre) - margin_m``
    away. Stopping (module docstring of :mod:`nearx.proximity`) returns ``(True,
    input positions, sorted-array positions, metres)`` of the ``n`` best; going
    on returns ``(False, positions, positions, squared chords)`` of every
    candidate so far, to pass back with the next ring's cells.
    """
    lo, hi = runs(sorted_cells, cells, digit_keep, sixes, finest_bits)
    return _advance(
        xyz,
        order,
        lo,
        hi,
        unit(lat, lng),
        radius_m,
        m_to_chord2(radius_m),
        reach,
        margin_m,
        n,
        seen_positions,
        seen_chord2,
    )


@njit("f8(f8[:, ::1], f8, f8, f8)", cache=True)
def ring_reach(ring: FloatArray, ox: float, oy: float, oz: float) -> float:
    """The least ``d(origin centre, c centre) - rad(c)`` in metres over ring cells ``c``.

    ``ring`` holds one row per cell: its centre's unit vector and its circumradius in metres.
    """
    reach = math.inf
    for i in range(ring.shape[0]):
        chord = math.sqrt((ring[i, 0] - ox) ** 2 + (ring[i, 1] - oy) ** 2 + (ring[i, 2] - oz) ** 2)
        reach = min(reach, 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5)) - ring[i, 3])
    return reach


@njit("UniTuple(f8, 4)(f8, f8, f8[:, ::1], i8, i8)", cache=True, inline="always")
def _geometry(lat: float, lng: float, vertices: FloatArray, start: int, stop: int) -> Geometry:
    """Centre unit vector and circumradius of the cell centred at ``(lat, lng)``, vertices ``start:stop``."""
    cx, cy, cz = unit(lat, lng)
    farthest2 = 0.0
    for i in range(start, stop):
        vx, vy, vz = unit(vertices[i, 0], vertices[i, 1])
        farthest2 = max(farthest2, (vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
    return cx, cy, cz, 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(farthest2) * 0.5))


@njit("UniTuple(f8, 4)(f8, f8, f8[:, ::1])", cache=True)
def cell_geometry(lat: float, lng: float, boundary: FloatArray) -> Geometry:
    """A cell's centre as a unit vector and its circumradius in metres (its farthest boundary vertex).

    ``(lat, lng)`` is the centre and ``boundary`` the vertices, ``(m, 2)``, in degrees.
    """
    return _geometry(lat, lng, boundary, 0, boundary.shape[0])


@njit("f8[:, ::1](f8[:, ::1], f8[:, ::1], i8[::1])", cache=True)
def cells_geometry(centres: FloatArray, vertices: FloatArray, offsets: IntArray) -> FloatArray:
    """:func:`cell_geometry` of many cells, one row each (the table an index precomputes at build).

    ``centres`` is ``(m, 2)``; cell ``i``'s vertices are rows ``offsets[i]:offsets[i + 1]`` of ``vertices``.
    """
    table = np.empty((centres.shape[0], 4), dtype=np.float64)
    for i in range(centres.shape[0]):
        table[i] = _geometry(centres[i, 0], centres[i, 1], vertices, offsets[i], offsets[i + 1])
    return table


@njit(cache=True, inline="always")
def _near(table: FloatArray, cells: IntArray, query: tuple[float, float, float], within_m: float) -> IntArray:
    """The table rows of ``cells`` whose points may lie within ``within_m`` of the query
    (``d(query, centre) - circumradius <= within_m``)."""
    qx, qy, qz = query
    kept = np.empty(cells.size, dtype=np.int64)
    found = 0
    for cell in cells:
        chord = math.sqrt(
            (table[cell, 0] - qx) ** 2 + (table[cell, 1] - qy) ** 2 + (table[cell, 2] - qz) ** 2
        )
        if 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5)) - table[cell, 3] <= within_m:
            kept[found] = cell
            found += 1
    return kept[:found]


MAX_WALK_RINGS = 16
"""Rings :func:`walk` grows before handing the query back (a far-reaching sparse query: h3-py walks it)."""


@njit("i8(i8[::1], i8[::1], i8, i8[:, ::1], b1[::1])", cache=True)
def grow_ring(
    rows: IntArray, ends: IntArray, k: int, neighbours: IntArray, complete: npt.NDArray[np.bool_]
) -> int:
    """Append ring ``k + 1`` to ``rows`` and return its end, or -1 when a cell of ring ``k`` has a
    neighbour outside the table or ``rows`` is full.

    ``rows`` holds table rows, ring ``j`` at ``rows[ends[j - 1]:ends[j]]`` (``ends[-1]`` read as 0).

    A neighbour of a cell at grid distance ``k`` is at ``k - 1``, ``k`` or ``k + 1``,
    so ring ``k + 1`` is the neighbours of ring ``k`` in neither ring ``k - 1`` nor
    ring ``k``. ``neighbours`` holds each cell's (-1 pads a pentagon's row) and
    ``complete`` whether all of them are in the table.
    """
    inner = ends[k - 2] if k >= 2 else 0
    start = ends[k - 1] if k >= 1 else 0
    stop = ends[k]
    end = stop
    for i in range(start, stop):
        if not complete[rows[i]]:
            return -1
        for other in neighbours[rows[i]]:
            if other < 0:
                continue
            seen = False
            for j in range(inner, end):
                if rows[j] == other:
                    seen = True
                    break
            if not seen:
                if end == rows.size:
                    return -1
                rows[end] = other
                end += 1
    return int(end)


@njit(
    "Tuple((b1, i8[::1], i8[::1], f8[::1]))(f8[:, ::1], i8[::1], u8[::1], f8[:, ::1], i8[::1], i8[::1], "
    "i8[:, ::1], b1[::1], u8, i8, f8, f8, i8, f8, u8, u8, f8)",
    cache=True,
)
def walk(
    xyz: FloatArray,
    order: IntArray,
    table_cells: UIntArray,
    table: FloatArray,
    table_lo: IntArray,
    table_hi: IntArray,
    neighbours: IntArray,
    complete: npt.NDArray[np.bool_],
    finest: int,
    k: int,
    lat: float,
    lng: float,
    n: int,
    radius_m: float,
    parent_keep: int,
    parent_fill: int,
    margin_m: float,
) -> tuple[bool, IntArray, IntArray, FloatArray]:
    """The whole walk from a plan's ``(res, k)`` in one call: :func:`step` per ring, rings from the table.

    ``(finest & parent_keep) | parent_fill`` is the origin, the query's ancestor at
    the plan's resolution; table row ``r``'s points are ``table_lo[r]:table_hi[r]``
    (:func:`runs`, at build). Returns ``(True, input positions, sorted-array positions, metres)``,
    or ``(False, ...)`` with empty arrays when the walk leaves the table (the
    caller then walks with h3-py instead).
    """
    empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    origin = (finest & parent_keep) | parent_fill
    at = np.searchsorted(table_cells, origin)
    if at >= table_cells.size or table_cells[at] != origin or k + 1 >= MAX_WALK_RINGS:
        return False, empty_i, empty_i, empty_f
    rows = np.empty(1 + 3 * MAX_WALK_RINGS * (MAX_WALK_RINGS + 1), dtype=np.int64)  # a full disk's cells
    ends = np.empty(MAX_WALK_RINGS + 1, dtype=np.int64)
    rows[0], ends[0] = at, 1
    for ring in range(k + 1):
        ends[ring + 1] = grow_ring(rows, ends, ring, neighbours, complete)
        if ends[ring + 1] < 0:
            return False, empty_i, empty_i, empty_f
    query = unit(lat, lng)
    ox, oy, oz = table[at, 0], table[at, 1], table[at, 2]
    keep_c2 = m_to_chord2(radius_m)
    _, origin_c2 = _scan(xyz, table_lo[at : at + 1], table_hi[at : at + 1], query, keep_c2)
    if origin_c2.size >= n:  # the origin's n-th point bounds the answer's: farther cells and points can go
        keep_c2 = np.partition(origin_c2, n - 1)[n - 1]
    keep_m = chord2_to_m(np.array([keep_c2]))[0]
    cells = rows[: ends[k]]
    positions, chord2 = empty_i, empty_f
    while True:
        reach = (ox, oy, oz, ring_reach(table[rows[ends[k] : ends[k + 1]]], ox, oy, oz))
        near = _near(table, cells, query, keep_m + margin_m)
        done, first, second, third = _advance(
            xyz,
            order,
            table_lo[near],
            table_hi[near],
            query,
            radius_m,
            keep_c2,
            reach,
            margin_m,
            n,
            positions,
            chord2,
        )
        if done:
            return True, first, second, third
        positions, chord2 = first, third
        k += 1
        if k + 1 >= MAX_WALK_RINGS:
            return False, empty_i, empty_i, empty_f
        ends[k + 1] = grow_ring(rows, ends, k, neighbours, complete)
        if ends[k + 1] < 0:
            return False, empty_i, empty_i, empty_f
        cells = rows[ends[k - 1] : ends[k]]
