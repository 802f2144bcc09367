"""The road-graph routing provider, on pyrosm's real central-Helsinki extract and on small PBFs.

The small PBFs are written by pyrosm's own PBF writer, so every case goes through
the same parser as a production extract; their answers are known by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyrosm import get_data
from pyrosm.pbf_export import write_pbf_from_records

from nearx.roadgraph import (
    NoRouteError,
    OutsideGraphError,
    RoadGraph,
    RoadGraphRouting,
    default_rules,
    maxspeed_kmh,
    mode_speeds_kmh,
    read_pbf,
    rules_from_mapping,
)
from nearx.routing import (
    FallbackRouting,
    HaversineRouting,
    Mode,
    RoutingError,
    elementwise_haversine_m,
    pairwise_haversine_m,
    routing_provider,
)
from nearx.settings import SettingsError, load_settings

NIGHT = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # no congestion at 03:00
PEAK = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # evening peak
PARSER_ROUNDING = 1e-5
"""pyrosm rounds segment lengths to the millimetre: compare hand-computed metres to that precision."""
STEP = 0.001  # degrees of latitude between grid nodes (~111 m)
Way = tuple[int, list[int], dict[str, str]]


def near(expected: float) -> Any:
    return pytest.approx(expected, rel=PARSER_ROUNDING)


def write_pbf(path: Path, nodes: dict[int, tuple[float, float]], ways: list[Way]) -> Path:
    ids = np.array(sorted(nodes), dtype=np.int64)
    lat = np.array([nodes[i][0] for i in ids])
    lng = np.array([nodes[i][1] for i in ids])
    records = {"id": ids, "lat": lat, "lon": lng, "tags": np.full(ids.size, None, dtype=object)}
    way_records = [{"id": way_id, "refs": refs, "tags": tags} for way_id, refs, tags in ways]
    write_pbf_from_records(records, way_records, [], str(path), (lng.min(), lat.min(), lng.max(), lat.max()))
    return path


def provider(path: Path, min_component_nodes: int = 1, max_snap_m: float = 300.0) -> RoadGraphRouting:
    graph = RoadGraph.build(read_pbf(path), min_component_nodes=min_component_nodes)
    return RoadGraphRouting(graph, "UTC", max_snap_m=max_snap_m)


def grid(rows: int, cols: int) -> dict[int, tuple[float, float]]:
    """Node ``r * 10 + c + 1`` at ``(60 + r * STEP, 24 + c * 2 * STEP)`` (cells ~111 x 111 m)."""
    return {r * 10 + c + 1: (60.0 + r * STEP, 24.0 + c * 2 * STEP) for r in range(rows) for c in range(cols)}


def metres(nodes: dict[int, tuple[float, float]], path: list[int]) -> float:
    points = np.array([nodes[n] for n in path])
    return float(elementwise_haversine_m(points[:-1], points[1:]).sum())


def seconds(length_m: float, kmh: float) -> float:
    return length_m / (kmh / 3.6)


@pytest.fixture(scope="module")
def helsinki() -> RoadGraphRouting:
    return RoadGraphRouting(RoadGraph.build(read_pbf(Path(get_data("helsinki_pbf")))), "Europe/Helsinki")


@pytest.fixture(scope="module")
def helsinki_points() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.stack([rng.uniform(60.165, 60.177, 25), rng.uniform(24.937, 24.952, 25)], axis=1)


# ---- the real extract ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_graph_distance_is_never_shorter_than_the_straight_line(
    helsinki: RoadGraphRouting, helsinki_points: np.ndarray, mode: Mode
) -> None:
    distance, duration = helsinki.matrix(helsinki_points, helsinki_points, mode, NIGHT)
    straight = pairwise_haversine_m(helsinki_points, helsinki_points)
    reachable = np.isfinite(distance)
    assert reachable.mean() > 0.9  # the main network of each mode covers the centre
    assert (distance[reachable] >= straight[reachable] - 1e-6).all()
    off_diagonal = reachable & ~np.eye(len(helsinki_points), dtype=bool)
    assert (duration[off_diagonal] > 0).all()
    # streets are not straight lines: typical detour index of a city centre
    assert 1.1 < np.median(distance[off_diagonal] / straight[off_diagonal]) < 2.5


def test_walking_is_symmetric_and_driving_is_not(
    helsinki: RoadGraphRouting, helsinki_points: np.ndarray
) -> None:
    walk, walk_s = helsinki.matrix(helsinki_points, helsinki_points, Mode.FOOT, NIGHT)
    assert np.allclose(walk, walk.T, rtol=1e-9)
    assert np.allclose(walk_s, walk_s.T, rtol=1e-9)
    drive, _ = helsinki.matrix(helsinki_points, helsinki_points, Mode.CAR, NIGHT)
    both = np.isfinite(drive) & np.isfinite(drive.T)
    assert (np.abs(drive - drive.T)[both] > 50).any()  # one-way streets make detours one way only


def test_matrix_equals_the_pairwise_shortest_paths(
    helsinki: RoadGraphRouting, helsinki_points: np.ndarray
) -> None:
    origins, destinations = helsinki_points[:4], helsinki_points[4:]  # sweeps from the origins
    distance, duration = helsinki.matrix(origins, destinations, Mode.BICYCLE, PEAK)
    assert distance.shape == duration.shape == (4, len(destinations))
    rows, cols = np.meshgrid(np.arange(4), np.arange(len(destinations)), indexing="ij")
    pair_m, pair_s = helsinki.pairs(origins[rows.ravel()], destinations[cols.ravel()], Mode.BICYCLE, PEAK)
    assert np.allclose(pair_m.reshape(distance.shape), distance)
    assert np.allclose(pair_s.reshape(duration.shape), duration)
    transposed_m, transposed_s = helsinki.matrix(destinations, origins, Mode.BICYCLE, PEAK)  # swept backwards
    reverse_m, _ = helsinki.matrix(origins, destinations, Mode.FOOT, NIGHT)
    assert np.allclose(reverse_m, helsinki.matrix(destinations, origins, Mode.FOOT, NIGHT)[0].T)
    assert transposed_m.shape == (len(destinations), 4)
    assert np.isfinite(transposed_s).any()
    for i, j in ((0, 0), (1, 5), (3, 20)):
        leg = helsinki.leg(tuple(origins[i]), tuple(destinations[j]), Mode.BICYCLE, PEAK)
        assert leg.distance_m == pytest.approx(distance[i, j])
        assert leg.duration_s == pytest.approx(duration[i, j])


def test_a_real_one_way_street_is_driven_one_way(helsinki: RoadGraphRouting) -> None:
    car = helsinki.graph.modes[Mode.CAR].seconds
    foot = helsinki.graph.modes[Mode.FOOT]
    snappable = np.zeros(car.shape[0], dtype=bool)
    snappable[helsinki.graph.modes[Mode.CAR].snap_nodes] = True
    coo = car.tocoo()
    one_way = [
        (int(a), int(b))
        for a, b in zip(coo.row, coo.col, strict=True)
        if car[b, a] == 0 and snappable[a] and snappable[b] and foot.seconds[b, a] > 0
    ]
    assert one_way, "central Helsinki has one-way streets"
    a, b = one_way[0]
    start, end = (
        (helsinki.graph.lat[a], helsinki.graph.lng[a]),
        (helsinki.graph.lat[b], helsinki.graph.lng[b]),
    )
    along = helsinki.leg(start, end, Mode.CAR, NIGHT)
    against = helsinki.leg(end, start, Mode.CAR, NIGHT)
    assert along.distance_m == pytest.approx(
        helsinki.graph.modes[Mode.CAR].edge_lengths(np.array([a]), np.array([b]))[0]
    )
    assert against.distance_m > along.distance_m + 1
    assert helsinki.leg(end, start, Mode.FOOT, NIGHT).distance_m <= along.distance_m + 1e-6


def test_cars_never_use_footways_and_walkers_have_more_network(helsinki: RoadGraphRouting) -> None:
    segments = read_pbf(Path(get_data("helsinki_pbf")))
    highway = segments.tag("highway")
    footway = (highway == "footway") | (highway == "pedestrian") | (highway == "steps")
    assert footway.sum() > 1000
    car = mode_speeds_kmh(segments, Mode.CAR, default_rules())
    walk = mode_speeds_kmh(segments, Mode.FOOT, default_rules())
    motor_tags = [segments.tag(key) for key in ("motorcar", "motor_vehicle", "vehicle")]
    untagged = np.logical_and.reduce([values == None for values in motor_tags])  # noqa: E711
    assert np.isnan(car[footway & untagged]).all()
    assert (np.isfinite(car[footway]).sum()) < 20  # pedestrian zones open to delivery vehicles
    open_to_all = (segments.tag("foot") == None) & (segments.tag("access") == None)  # noqa: E711
    assert np.isfinite(walk[footway & open_to_all]).all()
    assert np.isnan(walk[footway & (segments.tag("access") == "private")]).all()
    assert np.isnan(walk[highway == "motorway"]).all()
    graphs = helsinki.graph.modes
    assert graphs[Mode.FOOT].seconds.nnz > 2 * graphs[Mode.CAR].seconds.nnz
    assert graphs[Mode.FOOT].snap_nodes.size > 2 * graphs[Mode.CAR].snap_nodes.size


def test_a_point_far_outside_the_extract_is_refused_clearly(helsinki: RoadGraphRouting) -> None:
    inside = (60.170, 24.945)
    with pytest.raises(OutsideGraphError, match=r"more than 300 m from any road car couriers may use"):
        helsinki.leg(inside, (27.7154, 85.3123), Mode.CAR, NIGHT)  # Thamel, Kathmandu
    with pytest.raises(OutsideGraphError, match="finite"):
        helsinki.matrix(np.array([inside, (float("nan"), 24.9)]), np.array([inside]), Mode.FOOT, NIGHT)
    with pytest.raises(OutsideGraphError, match="finite"):
        helsinki.pairs(np.array([(95.0, 24.9)]), np.array([inside]), Mode.FOOT, NIGHT)
    with pytest.raises(ValueError, match="as many origins"):
        helsinki.pairs(np.array([inside, inside]), np.array([inside]), Mode.FOOT, NIGHT)


def test_congestion_slows_cars_at_the_peak_but_not_walkers(helsinki: RoadGraphRouting) -> None:
    a, b = (60.1660, 24.9400), (60.1760, 24.9500)
    early = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 05:00 in Helsinki
    peak = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 18:00 in Helsinki, the evening peak
    quiet, busy = helsinki.leg(a, b, Mode.CAR, early), helsinki.leg(a, b, Mode.CAR, peak)
    assert busy.distance_m == pytest.approx(quiet.distance_m)  # same path, every edge slowed alike
    profile = helsinki.profile
    slowdown = profile.speed_mps(Mode.CAR, 5) / profile.speed_mps(Mode.CAR, 18)
    assert slowdown > 1.5
    assert busy.duration_s == pytest.approx(quiet.duration_s * slowdown)
    assert helsinki.leg(a, b, Mode.FOOT, peak) == helsinki.leg(a, b, Mode.FOOT, early)


# ---- small extracts with known answers ----------------------------------------------------------


def test_one_way_rules_by_mode(tmp_path: Path) -> None:
    """A square 1-2-4-3: the edge 1->2 is one-way; 2->4->3->1 two-way. Bicycles may ride against it."""
    nodes = grid(2, 2)
    ways: list[Way] = [
        (100, [1, 2], {"highway": "residential", "oneway": "yes", "oneway:bicycle": "no"}),
        (101, [2, 12, 11, 1], {"highway": "residential"}),
    ]
    routing = provider(write_pbf(tmp_path / "square.osm.pbf", nodes, ways))
    one, two = nodes[1], nodes[2]
    direct = metres(nodes, [1, 2])
    around = metres(nodes, [2, 12, 11, 1])
    car_along = routing.leg(one, two, Mode.CAR, NIGHT)
    assert car_along.distance_m == near(direct)
    assert car_along.duration_s == near(seconds(direct, 25.0))
    assert routing.leg(two, one, Mode.CAR, NIGHT).distance_m == near(around)
    assert routing.leg(two, one, Mode.MOTORBIKE, NIGHT).distance_m == near(around)
    for mode in (Mode.BICYCLE, Mode.E_BIKE, Mode.FOOT):
        assert routing.leg(two, one, mode, NIGHT).distance_m == near(direct)


def test_reverse_one_ways_and_roundabouts(tmp_path: Path) -> None:
    nodes = grid(2, 2)
    ways: list[Way] = [
        (100, [1, 2], {"highway": "tertiary", "oneway": "-1"}),  # drivable from 2 to 1 only
        (101, [1, 11, 12, 2], {"highway": "tertiary", "junction": "roundabout"}),  # 1 -> 11 -> 12 -> 2
    ]
    routing = provider(write_pbf(tmp_path / "roundabout.osm.pbf", nodes, ways))

    def car(a: int, b: int) -> float:
        return routing.leg(nodes[a], nodes[b], Mode.CAR, NIGHT).distance_m

    assert car(2, 1) == near(metres(nodes, [2, 1]))
    assert car(1, 2) == near(metres(nodes, [1, 11, 12, 2]))
    assert car(1, 12) == near(metres(nodes, [1, 11, 12]))
    assert car(12, 1) == near(metres(nodes, [12, 2, 1]))
    assert routing.leg(nodes[1], nodes[2], Mode.FOOT, NIGHT).distance_m == near(metres(nodes, [1, 2]))


def test_two_way_streets_are_symmetric(tmp_path: Path) -> None:
    nodes = grid(3, 3)
    ways: list[Way] = [
        (100 + r, [r * 10 + 1, r * 10 + 2, r * 10 + 3], {"highway": "residential"}) for r in range(3)
    ] + [(200 + c, [c + 1, c + 11, c + 21], {"highway": "secondary"}) for c in range(3)]
    routing = provider(write_pbf(tmp_path / "grid.osm.pbf", nodes, ways))
    points = np.array(list(nodes.values()))
    for mode in Mode:
        distance, duration = routing.matrix(points, points, mode, PEAK)
        assert np.allclose(distance, distance.T)
        assert np.allclose(duration, duration.T)
        assert np.allclose(np.diag(distance), 0.0)
    # corner to corner by the faster secondary roads: down a column, along a row, and the time shows it
    leg = routing.leg(nodes[1], nodes[23], Mode.CAR, NIGHT)
    assert leg.distance_m == near(metres(nodes, [1, 11, 21, 22, 23]))
    best = min(
        seconds(metres(nodes, [1, 11, 21]), 40.0) + seconds(metres(nodes, [21, 22, 23]), 25.0),
        seconds(metres(nodes, [1, 2, 3]), 25.0) + seconds(metres(nodes, [3, 13, 23]), 40.0),
    )
    assert leg.duration_s == near(best)


def test_walkers_take_the_footway_cars_drive_around(tmp_path: Path) -> None:
    """A footway straight across (1-2-3) and a road around it (1-11-13-3); node 2 is only on the footway."""
    nodes = {1: (60.0, 24.0), 2: (60.0, 24.0015), 3: (60.0, 24.004), 11: (60.001, 24.0), 13: (60.001, 24.004)}
    ways: list[Way] = [
        (100, [1, 2, 3], {"highway": "footway"}),
        (101, [1, 11, 13, 3], {"highway": "residential"}),
    ]
    routing = provider(write_pbf(tmp_path / "footway.osm.pbf", nodes, ways))
    walk = routing.leg(nodes[1], nodes[3], Mode.FOOT, NIGHT)
    assert walk.distance_m == near(metres(nodes, [1, 2, 3]))
    assert walk.duration_s == near(seconds(walk.distance_m, 4.8))
    for mode in (Mode.BICYCLE, Mode.EV_SCOOTER, Mode.CAR):
        assert routing.leg(nodes[1], nodes[3], mode, NIGHT).distance_m == near(metres(nodes, [1, 11, 13, 3]))
    # A car cannot join the network at a footway node: from the footway's middle it starts at the
    # nearest road node (1), reached in a straight line at the mode's door-to-door speed.
    from_middle = routing.leg(nodes[2], nodes[3], Mode.CAR, NIGHT)
    assert from_middle.distance_m == near(metres(nodes, [2, 1]) + metres(nodes, [1, 11, 13, 3]))
    door_to_door_kmh = routing.profile.modes[Mode.CAR].free_flow_kmh
    assert from_middle.duration_s == near(
        seconds(metres(nodes, [2, 1]), door_to_door_kmh) + seconds(metres(nodes, [1, 11, 13, 3]), 25.0)
    )


def test_access_tags_override_the_road_class(tmp_path: Path) -> None:
    nodes = {1: (60.0, 24.0), 2: (60.0, 24.002), 3: (60.0, 24.004), 11: (60.001, 24.0), 13: (60.001, 24.004)}
    ways: list[Way] = [
        (100, [1, 2, 3], {"highway": "residential", "motor_vehicle": "no", "foot": "no"}),
        (101, [1, 11, 13, 3], {"highway": "footway", "bicycle": "yes", "maxspeed": "5"}),
    ]
    routing = provider(write_pbf(tmp_path / "access.osm.pbf", nodes, ways))
    straight, around = metres(nodes, [1, 2, 3]), metres(nodes, [1, 11, 13, 3])
    bike = routing.leg(nodes[1], nodes[3], Mode.BICYCLE, NIGHT)
    assert bike.distance_m == near(straight)  # motor_vehicle=no does not stop bicycles
    assert routing.leg(nodes[1], nodes[3], Mode.FOOT, NIGHT).distance_m == near(around)
    assert bike.duration_s == near(seconds(straight, 15.0))
    with pytest.raises(OutsideGraphError, match="no roads that car couriers may use"):
        routing.leg(nodes[1], nodes[3], Mode.CAR, NIGHT)
    bike_graph = routing.graph.modes[Mode.BICYCLE].seconds
    row = {int(osm): i for i, osm in enumerate(routing.graph.node_ids)}
    assert bike_graph[row[1], row[11]] == near(seconds(metres(nodes, [1, 11]), 5.0))


def test_unreachable_pairs_are_inf_in_matrices_and_an_error_for_a_leg(tmp_path: Path) -> None:
    nodes = {1: (60.0, 24.0), 2: (60.0, 24.002), 3: (60.01, 24.0), 4: (60.01, 24.002)}
    ways: list[Way] = [(100, [1, 2], {"highway": "residential"}), (101, [3, 4], {"highway": "residential"})]
    routing = provider(write_pbf(tmp_path / "islands.osm.pbf", nodes, ways))
    points = np.array([nodes[1], nodes[2], nodes[3], nodes[4]])
    distance, duration = routing.matrix(points, points, Mode.CAR, NIGHT)
    same_island = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=bool)
    assert np.isfinite(distance[same_island]).all()
    assert np.isinf(distance[~same_island]).all()
    assert np.isinf(duration[~same_island]).all()
    pair_m, _ = routing.pairs(points[:2], points[2:], Mode.CAR, NIGHT)
    assert np.isinf(pair_m).all()
    with pytest.raises(NoRouteError, match="no car route"):
        routing.leg(nodes[1], nodes[3], Mode.CAR, NIGHT)


def test_points_snap_past_small_fragments_to_the_main_network(tmp_path: Path) -> None:
    nodes = grid(3, 3) | {91: (60.0005, 24.001), 92: (60.0005, 24.0012)}
    ways: list[Way] = [
        (100 + r, [r * 10 + 1, r * 10 + 2, r * 10 + 3], {"highway": "residential"}) for r in range(3)
    ] + [(200 + c, [c + 1, c + 11, c + 21], {"highway": "residential"}) for c in range(3)]
    ways.append((300, [91, 92], {"highway": "service"}))  # a two-node parking aisle inside the first cell
    pbf = write_pbf(tmp_path / "fragment.osm.pbf", nodes, ways)
    beside_fragment = (60.0004, 24.0011)  # nearest main-network node: 2
    leg = provider(pbf, min_component_nodes=3).leg(beside_fragment, nodes[3], Mode.CAR, NIGHT)
    to_node_2 = float(elementwise_haversine_m(np.array([beside_fragment]), np.array([nodes[2]]))[0])
    assert leg.distance_m == near(to_node_2 + metres(nodes, [2, 3]))
    with pytest.raises(NoRouteError):  # without the size rule it joins the aisle and goes nowhere
        provider(pbf, min_component_nodes=1).leg(beside_fragment, nodes[3], Mode.CAR, NIGHT)


def test_bad_extracts_and_rules_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="no OpenStreetMap extract"):
        read_pbf(tmp_path / "missing.osm.pbf")
    raw: dict[str, Any] = {
        "access": {"allow": ["yes"], "deny": ["no"], "keys": {"foot": ["foot"]}},
        "oneway": {"modes": [], "exemptions": {}},
        "fallback_kmh": {"foot": 4.0},
        "speed_kmh": {"footway": {"foot": 4.8}},
    }
    with pytest.raises(ValueError, match="every mode"):
        rules_from_mapping(raw)
    assert "motorcar" in default_rules().tag_keys
    assert "oneway:bicycle" in default_rules().tag_keys


def test_numeric_maxspeeds_are_read_and_the_rest_ignored() -> None:
    parsed = maxspeed_kmh(np.array(["30", "20 mph", "FI:urban", None, "walk"], dtype=object))
    assert parsed[0] == 30.0
    assert parsed[1] == near(32.18688)
    assert np.isnan(parsed[2:]).all()


def test_the_setting_selects_the_provider(tmp_path: Path) -> None:
    home = {"NEARX_HOME": str(tmp_path)}
    default = routing_provider(load_settings(home), "kathmandu", "Asia/Kathmandu")
    assert isinstance(default, HaversineRouting)
    with pytest.raises(SettingsError, match="NEARX_ROUTING_PBF"):
        load_settings(home | {"NEARX_ROUTING": "graph"})
    with pytest.raises(SettingsError):
        load_settings(home | {"NEARX_ROUTING": "osrm"})
    pbf = write_pbf(
        tmp_path / "one.osm.pbf", grid(2, 2), [(100, [1, 2, 12, 11, 1], {"highway": "residential"})]
    )
    settings = load_settings(home | {"NEARX_ROUTING": "graph", "NEARX_ROUTING_PBF": str(pbf)})
    chosen = routing_provider(settings, "helsinki", "Europe/Helsinki")
    assert isinstance(chosen, FallbackRouting)
    assert isinstance(chosen.primary, RoadGraphRouting)
    assert chosen.primary.graph.lat.size == 4


def test_what_the_graph_cannot_answer_the_fallback_does(
    helsinki: RoadGraphRouting, helsinki_points: np.ndarray
) -> None:
    """A point far off the extract gets haversine's answer instead of an error (never a failed
    request); pairs the graph can route keep the graph's answer."""
    routing = FallbackRouting(helsinki, HaversineRouting("helsinki", "Europe/Helsinki"))
    on_graph = (float(helsinki_points[0, 0]), float(helsinki_points[0, 1]))
    far_away = (on_graph[0] + 1.0, on_graph[1] + 1.0)  # ~120 km away, outside the extract
    with pytest.raises(OutsideGraphError):
        helsinki.leg(on_graph, far_away, Mode.CAR, NIGHT)
    assert routing.leg(on_graph, far_away, Mode.CAR, NIGHT) == routing.fallback.leg(
        on_graph, far_away, Mode.CAR, NIGHT
    )
    origins = helsinki_points[:3]
    destinations = helsinki_points[3:6]
    graph_m, graph_s = helsinki.pairs(origins, destinations, Mode.FOOT, NIGHT)
    assert np.isfinite(graph_m).all()
    distance, duration = routing.pairs(origins, destinations, Mode.FOOT, NIGHT)
    np.testing.assert_array_equal(distance, graph_m)
    np.testing.assert_array_equal(duration, graph_s)
    outside = np.array([far_away] * 3)
    distance, duration = routing.pairs(origins, outside, Mode.FOOT, NIGHT)
    np.testing.assert_array_equal(distance, routing.fallback.pairs(origins, outside, Mode.FOOT, NIGHT)[0])
    assert np.isfinite(duration).all()


def test_unreachable_pairs_get_the_fallback_answer_but_stay_inf_in_matrices(tmp_path: Path) -> None:
    nodes = {1: (60.0, 24.0), 2: (60.0, 24.002), 3: (60.01, 24.0), 4: (60.01, 24.002)}
    ways: list[Way] = [(100, [1, 2], {"highway": "residential"}), (101, [3, 4], {"highway": "residential"})]
    routing = FallbackRouting(
        provider(write_pbf(tmp_path / "islands.osm.pbf", nodes, ways)), HaversineRouting("x", "UTC")
    )
    origins, destinations = np.array([nodes[1], nodes[1]]), np.array([nodes[2], nodes[3]])
    distance, _ = routing.pairs(origins, destinations, Mode.CAR, NIGHT)
    assert distance[0] == routing.primary.pairs(origins[:1], destinations[:1], Mode.CAR, NIGHT)[0][0]
    assert distance[1] == routing.fallback.pairs(origins[1:], destinations[1:], Mode.CAR, NIGHT)[0][0]
    assert routing.leg(nodes[1], nodes[3], Mode.CAR, NIGHT) == routing.fallback.leg(
        nodes[1], nodes[3], Mode.CAR, NIGHT
    )
    matrix_m, _ = routing.matrix(origins, destinations, Mode.CAR, NIGHT)
    assert np.isinf(matrix_m[0, 1])  # dispatch reads it as "no candidate"
