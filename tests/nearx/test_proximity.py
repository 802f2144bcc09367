"""The H3 ring search returns exactly what an exhaustive search returns, in the same order."""

from __future__ import annotations

import math

import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nearx import proximity_loops
from nearx.geo import EARTH_RADIUS_M, InvalidCoordinates, haversine_m
from nearx.proximity import (
    COARSEST_RESOLUTION,
    FINEST_RESOLUTION,
    MAX_RADIUS_M,
    PRECOMPUTED_FINEST_RESOLUTION,
    PRECOMPUTED_RINGS,
    Neighbours,
    ProximityIndex,
    _cell_geometry,
    _cell_table,
    _parents,
    _ring,
    nearest_brute_force,
)

KATHMANDU = (27.60, 85.20, 27.80, 85.52)  # min lat, min lng, max lat, max lng
KATHMANDU_BORDER = [(27.66, 85.20), (27.60, 85.26), (27.60, 85.44), (27.66, 85.52), (27.76, 85.52)]


def _uniform(seed: int, size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    return rng.uniform(KATHMANDU[0], KATHMANDU[2], size), rng.uniform(KATHMANDU[1], KATHMANDU[3], size)


def _clustered(seed: int, size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Dense clusters (a bazaar, a tower block) with a thin spread of points in between."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform((KATHMANDU[0], KATHMANDU[1]), (KATHMANDU[2], KATHMANDU[3]), (5, 2))
    which = rng.integers(0, 5, size)
    spread = rng.choice([0.0003, 0.002, 0.02], size)[:, None]
    points = centres[which] + rng.normal(0.0, 1.0, (size, 2)) * spread
    return np.clip(points[:, 0], -90, 90), np.clip(points[:, 1], -180, 180)


def assert_exact(
    index: ProximityIndex,
    lats: npt.NDArray[np.float64],
    lngs: npt.NDArray[np.float64],
    query: tuple[float, float],
    n: int,
    radius_m: float,
) -> Neighbours:
    got = index.nearest(query[0], query[1], n, radius_m)
    expected = nearest_brute_force(lats, lngs, query[0], query[1], n, radius_m)
    np.testing.assert_array_equal(got.positions, expected.positions)
    np.testing.assert_array_equal(got.distances_m, expected.distances_m)
    independent = _distances(lats, lngs, query)  # nearx.geo's scalar haversine, not the module's own code
    within_low = int(np.count_nonzero(independent <= radius_m - 1e-6))
    within_high = int(np.count_nonzero(independent <= radius_m + 1e-6))
    assert min(n, within_low) <= len(got) <= min(n, within_high)
    return got


def _distances(
    lats: npt.NDArray[np.float64], lngs: npt.NDArray[np.float64], query: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Textbook haversine in NumPy, written here independently of the module under test."""
    phi1, phi2 = math.radians(query[0]), np.radians(lats)
    a = (
        np.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lngs - query[1]) / 2) ** 2
    )
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a)), dtype=np.float64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 3000),
    clustered=st.booleans(),
    n=st.integers(0, 60),
    radius_m=st.sampled_from([1.0, 25.0, 150.0, 800.0, 3000.0, 15000.0, MAX_RADIUS_M]),
    query=st.tuples(st.floats(27.55, 27.85), st.floats(85.15, 85.57)),
)
def test_same_answer_as_brute_force(
    seed: int, size: int, clustered: bool, n: int, radius_m: float, query: tuple[float, float]
) -> None:
    lats, lngs = (_clustered if clustered else _uniform)(seed, size)
    assert_exact(ProximityIndex(lats, lngs), lats, lngs, query, n, radius_m)


class _FixedPlan(ProximityIndex):
    """An index forced to start from a given resolution and disk: the plan is a speed heuristic only."""

    def __init__(self, lats: npt.ArrayLike, lngs: npt.ArrayLike, res: int, rings: int, table: bool) -> None:
        super().__init__(lats, lngs, precompute_geometry=table)
        self._fixed = (res, rings)

    def _plan(self, finest: int, n: int, radius_m: float) -> tuple[int, int]:
        return self._fixed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 1500),
    clustered=st.booleans(),
    res=st.integers(COARSEST_RESOLUTION, FINEST_RESOLUTION),
    rings=st.integers(0, 3),
    n=st.integers(1, 30),
    radius_m=st.sampled_from([60.0, 400.0, 2500.0, 12000.0]),
    table=st.booleans(),
)
def test_exact_whatever_the_starting_resolution_and_disk(
    seed: int, size: int, clustered: bool, res: int, rings: int, n: int, radius_m: float, table: bool
) -> None:
    """The stopping rule alone makes the answer exact, even from a tiny first disk at a poor resolution,
    with rings from the cell table (and h3-py past its edge) or from h3-py alone.

    A rule of "stop once N candidates are seen" fails here: a candidate on the
    far side of the disk can be farther than an unseen point just past its near edge.
    """
    rings_to_cover = radius_m / (1.5 * h3i.average_hexagon_edge_length(res, "m"))
    assume(rings_to_cover < 25)  # keeps the example fast; coverage by many rings is still exercised
    lats, lngs = (_clustered if clustered else _uniform)(seed, size)
    index = _FixedPlan(lats, lngs, res, rings, table)
    queries = np.random.default_rng(seed).uniform((27.58, 85.18), (27.82, 85.54), (12, 2))
    for query in queries:
        assert_exact(index, lats, lngs, (float(query[0]), float(query[1])), n, radius_m)
    _same_as_one_by_one(index, queries, n, radius_m)


def _same_as_one_by_one(
    index: ProximityIndex, queries: npt.NDArray[np.float64], n: int, radius_m: float
) -> None:
    batch = index.nearest_many(queries[:, 0], queries[:, 1], n, radius_m)
    assert len(batch) == len(queries)
    for (lat, lng), got in zip(queries.tolist(), batch, strict=True):
        alone = index.nearest(lat, lng, n, radius_m)
        np.testing.assert_array_equal(got.positions, alone.positions)
        np.testing.assert_array_equal(got.ids, alone.ids)
        np.testing.assert_array_equal(got.distances_m, alone.distances_m)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 3000),
    clustered=st.booleans(),
    n=st.integers(0, 40),
    radius_m=st.sampled_from([30.0, 500.0, 4000.0, 20000.0]),
)
def test_batch_queries_answer_like_single_ones(
    seed: int, size: int, clustered: bool, n: int, radius_m: float
) -> None:
    lats, lngs = (_clustered if clustered else _uniform)(seed, size)
    queries = np.random.default_rng(seed + 1).uniform((27.58, 85.18), (27.82, 85.54), (25, 2))
    _same_as_one_by_one(ProximityIndex(lats, lngs), queries, n, radius_m)


def test_distances_are_haversine_metres_nearest_first() -> None:
    lats, lngs = _uniform(1, 2000)
    got = ProximityIndex(lats, lngs).nearest(27.7, 85.3, 25, 5000.0)
    assert len(got) == 25
    assert np.all(np.diff(got.distances_m) >= 0)
    for position, distance in zip(got.positions, got.distances_m, strict=True):
        assert distance == pytest.approx(haversine_m(27.7, 85.3, lats[position], lngs[position]), abs=1e-6)


@pytest.mark.parametrize("res", [7, 8, 9, 10, 11])
def test_points_on_cell_edges_and_queries_across_them(res: int) -> None:
    """Points sit on the vertices and edge midpoints of cells; queries come from the far side of an edge."""
    origin = h3i.latlng_to_cell(27.7172, 85.3240, res)
    cells = list(h3i.grid_disk(origin, 2))
    points = []
    for cell in cells:
        boundary = h3i.cell_to_boundary(cell)
        for (a1, b1), (a2, b2) in zip(boundary, boundary[1:] + boundary[:1], strict=True):
            points += [(a1, b1), ((a1 + a2) / 2, (b1 + b2) / 2)]
    lats = np.array([p[0] for p in points])
    lngs = np.array([p[1] for p in points])
    index = ProximityIndex(lats, lngs)
    edge = h3i.average_hexagon_edge_length(res, "m")
    for cell in cells:
        (a1, b1), (a2, b2) = h3i.cell_to_boundary(cell)[:2]
        centre = h3i.cell_to_latlng(cell)
        # just inside the cell, a hair from the edge midpoint (its nearest points are in the neighbour)
        mid = ((a1 + a2) / 2, (b1 + b2) / 2)
        inside = (mid[0] + (centre[0] - mid[0]) * 1e-6, mid[1] + (centre[1] - mid[1]) * 1e-6)
        for n in (1, 3, 12):
            assert_exact(index, lats, lngs, inside, n, 4 * edge)
            assert_exact(index, lats, lngs, (a1, b1), n, edge)


def test_sparse_suburb_grows_rings_until_far_points_are_reached() -> None:
    """A dense core and a few houses kilometres out: a suburb query must reach past many empty rings."""
    rng = np.random.default_rng(3)
    core_lats, core_lngs = rng.uniform(27.70, 27.73, 5000), rng.uniform(85.30, 85.34, 5000)
    far_lats = 27.62 + rng.uniform(0, 0.01, 6)
    far_lngs = 85.48 + rng.uniform(0, 0.01, 6)
    lats, lngs = np.concatenate([core_lats, far_lats]), np.concatenate([core_lngs, far_lngs])
    index = ProximityIndex(lats, lngs)
    got = assert_exact(index, lats, lngs, (27.60, 85.50), 10, 30_000.0)
    assert len(got) == 10
    assert got.distances_m[0] > 2_000  # nothing nearby: the first answers are only found after rings grow
    assert set(range(len(core_lats), len(lats))) <= set(got.positions.tolist())
    assert len(assert_exact(index, lats, lngs, (27.60, 85.50), 10, 1_500.0)) == 0


def test_city_border_queries_see_only_the_inside() -> None:
    lats, lngs = _uniform(11, 4000)
    index = ProximityIndex(lats, lngs)
    for corner in KATHMANDU_BORDER:
        for n in (1, 20, 200):
            got = assert_exact(index, lats, lngs, corner, n, 2_000.0)
            assert np.all(got.distances_m <= 2_000.0)


def test_radius_is_inclusive_and_n_larger_than_available_returns_all_within() -> None:
    lats, lngs = _uniform(5, 300)
    index = ProximityIndex(lats, lngs)
    distances = np.sort(_distances(lats, lngs, (27.7, 85.36)))
    exact = float(index.nearest(27.7, 85.36, 10, MAX_RADIUS_M).distances_m[9])
    assert len(index.nearest(27.7, 85.36, 1000, exact)) == 10  # the 10th point, exactly at R, is included
    assert len(index.nearest(27.7, 85.36, 1000, MAX_RADIUS_M)) == 300
    assert len(index.nearest(27.7, 85.36, 1000, 1500.0)) == int(np.count_nonzero(distances <= 1500.0))
    assert len(index.nearest(27.7, 85.36, 5, 0.001)) == 0


def test_ties_are_broken_by_input_position() -> None:
    """Duplicates (a courier hub) and mirror-image points equidistant from the query."""
    base = [(27.7, 85.3)] * 5 + [(27.701, 85.3), (27.699, 85.3), (27.7, 85.301), (27.7, 85.299)]
    lats = np.array([p[0] for p in base] * 3)
    lngs = np.array([p[1] for p in base] * 3)
    index = ProximityIndex(lats, lngs, ids=[f"c{i}" for i in range(lats.size)])
    got = assert_exact(index, lats, lngs, (27.7, 85.3), 7, 500.0)
    assert got.positions.tolist() == [0, 1, 2, 3, 4, 9, 10]
    assert got.ids.tolist() == ["c0", "c1", "c2", "c3", "c4", "c9", "c10"]
    assert_exact(index, lats, lngs, (27.7005, 85.3), 8, 500.0)


def test_empty_index_and_zero_n() -> None:
    empty = ProximityIndex(np.zeros(0), np.zeros(0))
    assert len(empty.nearest(27.7, 85.3, 5, 1000.0)) == 0
    lats, lngs = _uniform(2, 50)
    assert len(ProximityIndex(lats, lngs).nearest(27.7, 85.3, 0, 1000.0)) == 0


@pytest.mark.parametrize("radius_m", [0.0, -1.0, math.inf, math.nan, MAX_RADIUS_M + 1])
def test_bad_radius_is_refused(radius_m: float) -> None:
    with pytest.raises(ValueError, match="radius_m"):
        ProximityIndex(np.array([27.7]), np.array([85.3])).nearest(27.7, 85.3, 1, radius_m)


def test_bad_coordinates_and_n_are_refused() -> None:
    index = ProximityIndex(np.array([27.7]), np.array([85.3]))
    with pytest.raises(InvalidCoordinates):
        index.nearest(91.0, 85.3, 1, 100.0)
    with pytest.raises(ValueError, match="n must"):
        index.nearest(27.7, 85.3, -1, 100.0)
    with pytest.raises(ValueError, match="finite latitude"):
        ProximityIndex(np.array([27.7, math.nan]), np.array([85.3, 85.3]))
    with pytest.raises(ValueError, match="same length"):
        ProximityIndex(np.array([27.7, 27.8]), np.array([85.3]))


@pytest.mark.parametrize("res", [4, 7, 9, 11])
def test_cell_geometry_and_ring_reach_match_haversine(res: int) -> None:
    """The compiled ring bound, against nearx.geo's scalar haversine: hexagons and a pentagon."""
    for origin in (h3i.latlng_to_cell(27.7172, 85.3240, res), h3i.get_pentagons(res)[0]):
        geometry = {}
        for cell in h3i.grid_disk(origin, 2):
            centre, boundary = h3i.cell_to_latlng(cell), h3i.cell_to_boundary(cell)
            geometry[cell] = proximity_loops.cell_geometry(*centre, np.array(boundary, dtype=np.float64))
            lat, lng = math.radians(centre[0]), math.radians(centre[1])
            unit = (math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat))
            assert geometry[cell][:3] == pytest.approx(unit)
            radius = max(haversine_m(*centre, *vertex) for vertex in boundary)
            assert geometry[cell][3] == pytest.approx(radius, rel=1e-9)
        ring = [cell for cell in geometry if h3i.grid_distance(origin, cell) == 2]
        expected = min(
            haversine_m(*h3i.cell_to_latlng(origin), *h3i.cell_to_latlng(cell)) - geometry[cell][3]
            for cell in ring
        )
        got = proximity_loops.ring_reach(np.array([geometry[cell] for cell in ring]), *geometry[origin][:3])
        assert got == pytest.approx(expected, abs=1e-6 * h3i.average_hexagon_edge_length(res, "m"))


def test_exact_around_a_pentagon() -> None:
    """Next to a pentagon cells are distorted (five sides, extra boundary vertices): still exact."""
    pentagon = h3i.get_pentagons(9)[0]
    lat, lng = h3i.cell_to_latlng(pentagon)
    rng = np.random.default_rng(9)
    lats, lngs = lat + rng.normal(0, 0.01, 800), lng + rng.normal(0, 0.02, 800)
    index = ProximityIndex(lats, lngs)
    for query in [(lat, lng), (lat + 0.003, lng - 0.004), (lat - 0.02, lng + 0.03)]:
        for n in (1, 15, 100):
            assert_exact(index, lats, lngs, query, n, 3_000.0)


@pytest.mark.parametrize("clustered", [False, True])
def test_cell_table_and_h3_walk_give_the_same_answers(clustered: bool) -> None:
    """The compiled walk over the cell table and the h3-py walk are two routes to one answer."""
    lats, lngs = (_clustered if clustered else _uniform)(5, 4000)
    with_table, without = ProximityIndex(lats, lngs), ProximityIndex(lats, lngs, precompute_geometry=False)
    queries = np.random.default_rng(6).uniform((27.58, 85.18), (27.82, 85.54), (200, 2)).tolist()
    for n, radius_m in [(1, 300.0), (20, 10_000.0), (200, 1_500.0)]:
        for lat, lng in queries:
            got, expected = with_table.nearest(lat, lng, n, radius_m), without.nearest(lat, lng, n, radius_m)
            np.testing.assert_array_equal(got.positions, expected.positions)
            np.testing.assert_array_equal(got.distances_m, expected.distances_m)


@pytest.mark.parametrize("clustered", [False, True])
def test_a_subset_sharing_the_supersets_table_answers_like_its_own(clustered: bool) -> None:
    """A category's index borrowing the city's cell table (only the point ranges are its own)
    answers exactly as one that built its table, and as brute force."""
    lats, lngs = (_clustered if clustered else _uniform)(8, 4000)
    members = np.flatnonzero(np.random.default_rng(9).random(lats.size) < 0.15)
    city = ProximityIndex(lats, lngs)
    shared = ProximityIndex(lats[members], lngs[members], members, geometry_of=city)
    own = ProximityIndex(lats[members], lngs[members], members)
    queries = np.random.default_rng(10).uniform((27.58, 85.18), (27.82, 85.54), (150, 2)).tolist()
    for n, radius_m in [(1, 300.0), (20, 10_000.0), (200, 1_500.0)]:
        for lat, lng in queries:
            got, expected = shared.nearest(lat, lng, n, radius_m), own.nearest(lat, lng, n, radius_m)
            np.testing.assert_array_equal(got.ids, expected.ids)
            np.testing.assert_array_equal(got.distances_m, expected.distances_m)
    for query in queries[:20]:
        assert_exact(shared, lats[members], lngs[members], (query[0], query[1]), 20, 5_000.0)


def test_parents_are_h3_parents() -> None:
    cells = np.array(
        [h3i.latlng_to_cell(lat, lng, FINEST_RESOLUTION) for lat, lng in zip(*_uniform(3, 300), strict=True)],
        dtype=np.uint64,
    )
    for res in range(FINEST_RESOLUTION + 1):
        assert _parents(cells, res).tolist() == [h3i.cell_to_parent(int(cell), res) for cell in cells]


@pytest.mark.parametrize("where", ["city", "pentagon"])
def test_cell_table_rows_and_rings_are_h3s(where: str) -> None:
    """Geometry rows are bit-equal to the per-cell h3-py route; rings grown from the neighbour rows are
    h3's rings (a pentagon's neighbourhood included) until the table ends, where growing reports it."""
    if where == "city":
        lats, lngs = _clustered(8, 500)
    else:
        lat, lng = h3i.cell_to_latlng(h3i.get_pentagons(8)[0])
        lats, lngs = np.array([lat, lat + 0.01]), np.array([lng, lng - 0.01])
    finest = np.sort(ProximityIndex(lats, lngs)._cells)
    table = _cell_table(finest)
    assert np.all(np.diff(table.cells.astype(np.float64)) > 0)
    for row in np.random.default_rng(0).choice(table.cells.size, 300).tolist():
        cell = int(table.cells[row])
        assert tuple(table.geometry[row]) == _cell_geometry(cell)
        inside = np.flatnonzero(_parents(finest, h3i.get_resolution(cell)) == cell)  # finest is sorted
        assert (table.lo[row], table.hi[row]) == (
            (inside[0], inside[-1] + 1) if inside.size else (table.lo[row],) * 2
        )
    origins = np.unique(np.concatenate([_parents(finest, res) for res in (COARSEST_RESOLUTION, 8, 10)]))
    for origin in origins.tolist():
        rows = np.empty(200, dtype=np.int64)
        ends = np.empty(PRECOMPUTED_RINGS + 3, dtype=np.int64)
        rows[0], ends[0] = int(np.searchsorted(table.cells, origin)), 1
        for k in range(PRECOMPUTED_RINGS + 1):
            ends[k + 1] = proximity_loops.grow_ring(rows, ends, k, table.neighbours, table.complete)
            if k + 1 <= PRECOMPUTED_RINGS:  # within the table by construction
                ring = table.cells[rows[ends[k] : ends[k + 1]]]
                assert sorted(ring.tolist()) == sorted(_ring(origin, k + 1).tolist())
        assert ends[PRECOMPUTED_RINGS + 1] == -1 or sorted(
            table.cells[rows[ends[PRECOMPUTED_RINGS] : ends[PRECOMPUTED_RINGS + 1]]].tolist()
        ) == sorted(_ring(origin, PRECOMPUTED_RINGS + 1).tolist())


def test_with_a_table_plans_start_no_finer_than_the_table() -> None:
    """A dense block (30 points within a few metres) starts from its finest cell without a table,
    and one resolution coarser with one, where the walk stays in the compiled table."""
    rng = np.random.default_rng(4)
    lats, lngs = 27.7 + rng.normal(0, 0.00002, 30), 85.3 + rng.normal(0, 0.00002, 30)
    finest = h3i.latlng_to_cell(27.7, 85.3, FINEST_RESOLUTION)
    without = ProximityIndex(lats, lngs, precompute_geometry=False)
    with_table = ProximityIndex(lats, lngs)
    assert without._plan(finest, 5, 1_000.0) == (FINEST_RESOLUTION, 1)
    assert with_table._plan(finest, 5, 1_000.0) == (PRECOMPUTED_FINEST_RESOLUTION, 1)
    assert with_table._plan(finest, 5, 30.0)[0] == PRECOMPUTED_FINEST_RESOLUTION  # a tiny R's covering too
    assert_exact(with_table, lats, lngs, (27.7, 85.3), 5, 1_000.0)
