"""The inner loops of :mod:`nearx.proximity`, compiled with numba.

A query's work is small (a few dozen cells, a few hundred points), so in NumPy
it was dominated by the fixed cost of ~40 small array calls (~50 µs a query).
Here each step (plan, scan of a set of cells, top N) is one compiled call that
loops over plain arrays. The arithmetic that decides an answer is spelled out
in the same order as the NumPy oracle (:func:`nearx.proximity.nearest_brute_force`),
so distances agree bit for bit.

Signatures are explicit, so each function is compiled once, for these types
only, when this module is imported; ``cache=True`` stores the machine code next
to the module, so later imports load it in milliseconds instead of compiling.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

UIntArray = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@njit("Tuple((i8[:], i8[:]))(u8[::1], u8[::1], u8[::1], u8[::1], i8, i8, i8, i8, i8)", cache=True)
def plans(
    sorted_cells: UIntArray,
    finest: UIntArray,
    ancestor_keep: UIntArray,
    ancestor_sixes: UIntArray,
    n: int,
    coarsest: int,
    finest_res: int,
    covering: int,
    covering_rings: int,
) -> tuple[IntArray, IntArray]:
    """Resolution and first disk size per query (see ``ProximityIndex._plans`` for the why).

    ``ancestor_keep[j]`` / ``ancestor_sixes[j]`` turn a finest cell into the first /
    last finest descendant of its ancestor at resolution ``coarsest + j``.
    """
    res = np.empty(finest.size, dtype=np.int64)
    rings = np.empty(finest.size, dtype=np.int64)
    for q in range(finest.size):
        dense = coarsest - 1  # the finest resolution whose ancestor holds >= n points
        for j in range(ancestor_keep.size):  # counts shrink as the resolution grows
            first = finest[q] & ancestor_keep[j]
            lo = np.searchsorted(sorted_cells, first, side="left")
            hi = np.searchsorted(sorted_cells, first | ancestor_sixes[j], side="right")
            if hi - lo < n:
                break
            dense = coarsest + j
        if dense < covering:
            res[q], rings[q] = covering, covering_rings
        else:
            res[q] = min(dense + 1, finest_res)
            rings[q] = 3 if dense < finest_res else 2
    return res, rings


@njit(
    "Tuple((i8[:], f8[:], i8))(u8[::1], f8[:, ::1], u8[::1], u8, u8, u8, f8[::1], f8, f8)",
    cache=True,
)
def scan(
    sorted_cells: UIntArray,
    xyz: FloatArray,
    cells: UIntArray,
    digit_keep: np.uint64,
    sixes: np.uint64,
    finest_bits: np.uint64,
    query: FloatArray,
    radius_c2: float,
    sure_c2: float,
) -> tuple[IntArray, FloatArray, int]:
    """The points of ``cells`` (all at one resolution) within ``radius_c2`` of ``query``.

    Returns their positions in the sorted arrays, their squared chords, and how
    many of them lie strictly closer than ``sure_c2`` (the stopping test's count).
    A cell's descendants are one run of ``sorted_cells``: from ``(cell & digit_keep) |
    finest_bits`` to that ``| sixes``.
    """
    lo = np.empty(cells.size, dtype=np.int64)
    hi = np.empty(cells.size, dtype=np.int64)
    total = 0
    for i in range(cells.size):
        first = (cells[i] & digit_keep) | finest_bits
        lo[i] = np.searchsorted(sorted_cells, first, side="left")
        hi[i] = np.searchsorted(sorted_cells, first | sixes, side="right")
        total += hi[i] - lo[i]
    positions = np.empty(total, dtype=np.int64)
    chord2 = np.empty(total, dtype=np.float64)
    found = 0
    sure = 0
    qx, qy, qz = query[0], query[1], query[2]
    for i in range(cells.size):
        for p in range(lo[i], hi[i]):
            dx = xyz[p, 0] - qx
            dy = xyz[p, 1] - qy
            dz = xyz[p, 2] - qz
            c2 = dx * dx + dy * dy + dz * dz
            if c2 <= radius_c2:
                positions[found] = p
                chord2[found] = c2
                found += 1
                if c2 < sure_c2:
                    sure += 1
    return positions[:found], chord2[:found], sure


@njit("Tuple((i8[:], i8[:], f8[:]))(i8[::1], f8[::1], i8, i8[::1])", cache=True)
def top_n(
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


@njit("f8(f8[:, ::1], f8, f8, f8, f8)", cache=True)
def ring_reach(ring: FloatArray, ox: float, oy: float, oz: float, earth_radius_m: float) -> float:
    """The least ``d(origin centre, c centre) - rad(c)`` in metres over ring cells ``c``.

    ``ring`` holds one row per cell: its centre's unit vector and its circumradius in metres.
    """
    reach = math.inf
    for i in range(ring.shape[0]):
        chord = math.sqrt((ring[i, 0] - ox) ** 2 + (ring[i, 1] - oy) ** 2 + (ring[i, 2] - oz) ** 2)
        reach = min(reach, 2.0 * earth_radius_m * math.asin(min(1.0, chord * 0.5)) - ring[i, 3])
    return reach


@njit("UniTuple(f8, 3)(f8, f8)", cache=True)
def _unit(lat: float, lng: float) -> tuple[float, float, float]:
    lat_r, lng_r = math.radians(lat), math.radians(lng)
    cos_lat = math.cos(lat_r)
    return cos_lat * math.cos(lng_r), cos_lat * math.sin(lng_r), math.sin(lat_r)


@njit("UniTuple(f8, 4)(f8, f8, f8[:, ::1], f8)", cache=True)
def cell_geometry(
    lat: float, lng: float, boundary: FloatArray, earth_radius_m: float
) -> tuple[float, float, float, float]:
    """A cell's centre as a unit vector and its circumradius in metres (its farthest boundary vertex).

    ``(lat, lng)`` is the centre and ``boundary`` the vertices, ``(m, 2)``, in degrees.
    """
    cx, cy, cz = _unit(lat, lng)
    farthest2 = 0.0
    for i in range(boundary.shape[0]):
        vx, vy, vz = _unit(boundary[i, 0], boundary[i, 1])
        farthest2 = max(farthest2, (vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
    return cx, cy, cz, 2.0 * earth_radius_m * math.asin(min(1.0, math.sqrt(farthest2) * 0.5))
