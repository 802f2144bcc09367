"""Road-graph routing: shortest paths per mode on an OpenStreetMap street network.

The default provider (:class:`nearx.routing.HaversineRouting`) guesses road
distance from straight lines; this one reads the streets. :func:`read_pbf` parses
a PBF extract with pyrosm into way segments, :meth:`RoadGraph.build` turns them
into one directed graph per mode (which ways the mode may use, in which
direction, at what speed: ``nearx/data/roadgraph.toml``), and
:class:`RoadGraphRouting` answers the :class:`~nearx.routing.RoutingProvider`
interface with Dijkstra (``scipy.sparse.csgraph``) on travel time.

Details that shape the answers:

- A point joins the network at its nearest usable node (``cKDTree`` over unit
  vectors); the straight access legs at both ends are added at the mode's
  door-to-door speed. A point farther than ``max_snap_m`` from every node the
  mode may use raises :class:`OutsideGraphError` instead of inventing a route.
- Snapping only targets strongly connected components of at least
  ``min_component_nodes`` nodes (1,000 by default, OSRM's small-component
  size), so a parking aisle, a one-way fragment or a piece cut off at the
  extract's border does not swallow a point next to the real network.
- Paths minimise free-flow time; the hour's congestion (routing.toml's hourly
  factors x the mode's sensitivity) scales every edge of a mode alike, so it
  rescales the duration without changing the path.
- Pairs with no path (separate islands) are ``inf`` in :meth:`~RoadGraphRouting.matrix`
  and :meth:`~RoadGraphRouting.pairs`; :meth:`~RoadGraphRouting.leg` raises
  :class:`NoRouteError`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from nearx.clock import ensure_utc
from nearx.proximity import chord2_to_m, m_to_chord2, unit_vectors
from nearx.routing import (
    FloatArray,
    Leg,
    Mode,
    RoutingError,
    RoutingProfile,
    default_profile,
    elementwise_haversine_m,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

_SWEEP_CELLS = 4_000_000
"""Dijkstra rows x graph nodes held in memory at once (each cell costs ~24 bytes)."""


class OutsideGraphError(RoutingError):
    """A point lies too far from every road its mode may use (outside the extract, or bad input)."""


class NoRouteError(RoutingError):
    """Both points are on the network, but no path for the mode joins them."""


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Which ways a mode may use, in which direction, and how fast: routing data, loaded from TOML."""

    speed_kmh: dict[str, dict[Mode, float]]
    """highway class -> mode -> free-flow km/h; a missing mode may not use the class by default."""
    access_keys: dict[Mode, tuple[str, ...]]
    allow: frozenset[str]
    deny: frozenset[str]
    oneway_modes: frozenset[Mode]
    oneway_exemptions: dict[Mode, str]
    fallback_kmh: dict[Mode, float]

    @property
    def tag_keys(self) -> tuple[str, ...]:
        """Every OSM tag the rules read, so the parser keeps them as columns."""
        keys = {"highway", "oneway", "junction", "maxspeed", *self.oneway_exemptions.values()}
        for chain in self.access_keys.values():
            keys.update(chain)
        return tuple(sorted(keys))


@cache
def default_rules() -> AccessRules:
    """The rules shipped in ``nearx/data/roadgraph.toml`` (read once)."""
    raw = tomllib.loads(resources.files("nearx").joinpath("data/roadgraph.toml").read_text("utf-8"))
    return rules_from_mapping(raw)


def rules_from_mapping(raw: dict[str, Any]) -> AccessRules:
    """Validate the TOML's shape: known modes, an access chain and a fallback for each, speeds > 0."""
    speeds = {
        highway: {Mode(mode): float(kmh) for mode, kmh in by_mode.items()}
        for highway, by_mode in raw["speed_kmh"].items()
    }
    keys = {Mode(mode): tuple(chain) for mode, chain in raw["access"]["keys"].items()}
    fallback = {Mode(mode): float(kmh) for mode, kmh in raw["fallback_kmh"].items()}
    if set(keys) != set(Mode) or set(fallback) != set(Mode):
        raise ValueError("road rules need an access chain and a fallback speed for every mode")
    if (
        any(kmh <= 0 for by_mode in speeds.values() for kmh in by_mode.values())
        or min(fallback.values()) <= 0
    ):
        raise ValueError("road speeds must be positive")
    allow, deny = frozenset(raw["access"]["allow"]), frozenset(raw["access"]["deny"])
    if allow & deny:
        raise ValueError(f"access values both allowed and denied: {sorted(allow & deny)}")
    return AccessRules(
        speed_kmh=speeds,
        access_keys=keys,
        allow=allow,
        deny=deny,
        oneway_modes=frozenset(Mode(mode) for mode in raw["oneway"]["modes"]),
        oneway_exemptions={Mode(mode): key for mode, key in raw["oneway"]["exemptions"].items()},
        fallback_kmh=fallback,
    )


@dataclass(frozen=True)
class RoadSegments:
    """A street network as the parser hands it over: nodes, and one row per way segment ``u -> v``."""

    node_ids: IntArray
    lat: FloatArray
    lng: FloatArray
    u: IntArray
    v: IntArray
    length_m: FloatArray
    tags: dict[str, ObjectArray]
    """OSM tag -> value per segment (``None`` where the way lacks it)."""

    def tag(self, key: str) -> ObjectArray:
        values = self.tags.get(key)
        return np.full(self.u.size, None, dtype=object) if values is None else values


def read_pbf(path: Path, rules: AccessRules | None = None) -> RoadSegments:
    """Every way segment of an OSM PBF extract that has a ``highway`` tag, via pyrosm."""
    from pyrosm import OSM  # heavy (pandas, geopandas): imported only when a graph is built

    if not path.is_file():
        raise RoutingError(f"no OpenStreetMap extract at {path}")
    keys = (rules or default_rules()).tag_keys
    network = OSM(str(path)).get_network(network_type="all", nodes=True, extra_attributes=list(keys))
    if network is None:
        raise RoutingError(f"{path} holds no roads")
    nodes, edges = network
    tags = {
        key: np.array([None if _missing(value) else str(value) for value in edges[key]], dtype=object)
        for key in keys
        if key in edges.columns
    }
    return RoadSegments(
        node_ids=nodes["id"].to_numpy(dtype=np.int64),
        lat=nodes["lat"].to_numpy(dtype=np.float64),
        lng=nodes["lon"].to_numpy(dtype=np.float64),
        u=edges["u"].to_numpy(dtype=np.int64),
        v=edges["v"].to_numpy(dtype=np.int64),
        length_m=edges["length"].to_numpy(dtype=np.float64),
        tags=tags,
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def maxspeed_kmh(values: ObjectArray) -> FloatArray:
    """Numeric ``maxspeed`` tags in km/h (``"30"``, ``"20 mph"``); ``nan`` for the rest (``"FI:urban"``)."""
    result = np.full(values.size, np.nan)
    for i, value in enumerate(values.tolist()):
        if value is None:
            continue
        number, _, unit = str(value).strip().partition(" ")
        try:
            speed = float(number)
        except ValueError:
            continue
        result[i] = speed * 1.609344 if unit.strip() == "mph" else speed
    return result


def mode_speeds_kmh(segments: RoadSegments, mode: Mode, rules: AccessRules) -> FloatArray:
    """Each segment's free-flow speed for ``mode``: ``nan`` where the mode may not use it.

    The class (``highway``) gives the default; the first access tag of the mode's
    chain present on the way overrides it (the general ``access`` tag can close a
    way but not open a class to a mode, as in OSRM's profiles); a numeric
    ``maxspeed`` caps the speed.
    """
    highway = segments.tag("highway")
    speed = np.array([rules.speed_kmh.get(str(h), {}).get(mode, np.nan) for h in highway.tolist()])
    decided = np.zeros(speed.size, dtype=bool)
    for key in rules.access_keys[mode]:
        values = segments.tag(key)
        present = ~decided & (values != None)  # noqa: E711 (element-wise on an object array)
        allowed = present & np.isin(values, list(rules.allow))
        denied = present & np.isin(values, list(rules.deny))
        if key != "access":  # access=yes on a footway lets the public walk it, not drive it
            speed[allowed & np.isnan(speed)] = rules.fallback_kmh[mode]
        speed[denied] = np.nan
        decided |= allowed | denied
    capped = np.fmin(speed, maxspeed_kmh(segments.tag("maxspeed")))
    return np.where(np.isnan(speed), np.nan, capped)


def oneway_directions(segments: RoadSegments, mode: Mode, rules: AccessRules) -> tuple[BoolArray, BoolArray]:
    """Whether ``mode`` may travel each segment forwards (``u -> v``) and backwards, as booleans."""
    n = segments.u.size
    forward = np.ones(n, dtype=bool)
    backward = np.ones(n, dtype=bool)
    if mode not in rules.oneway_modes:
        return forward, backward
    oneway = segments.tag("oneway")
    roundabout = np.isin(segments.tag("junction"), ["roundabout", "circular"]) & (oneway != "no")
    along = np.isin(oneway, ["yes", "true", "1"]) | roundabout
    against = np.isin(oneway, ["-1", "reverse"])
    exemption = rules.oneway_exemptions.get(mode)
    exempt = segments.tag(exemption) == "no" if exemption else np.zeros(n, dtype=bool)
    backward &= ~(along & ~exempt)
    forward &= ~(against & ~exempt)
    return forward, backward


@dataclass(frozen=True)
class ModeGraph:
    """One mode's directed network: free-flow seconds per edge, their lengths, and the snap index."""

    mode: Mode
    seconds: csr_matrix
    """``seconds[a, b]`` = free-flow seconds from node ``a`` to node ``b`` (absent = no edge)."""
    edge_keys: IntArray
    """Sorted ``a * n_nodes + b`` of every edge, aligned with ``edge_length_m``."""
    edge_length_m: FloatArray
    snap_nodes: IntArray
    """Nodes a point may join the network at (usable, in a large enough strongly connected component)."""
    snap_tree: cKDTree | None

    def edge_lengths(self, start: IntArray, end: IntArray) -> FloatArray:
        """Length of the edges ``start[i] -> end[i]`` (all of which exist)."""
        n = int(self.seconds.shape[0])
        at = np.searchsorted(self.edge_keys, start * n + end)
        return np.asarray(self.edge_length_m[at], dtype=np.float64)


@dataclass(frozen=True)
class RoadGraph:
    """The street network's nodes and one :class:`ModeGraph` per mode."""

    node_ids: IntArray
    """OSM id of each node row (rows index every array and matrix here)."""
    lat: FloatArray
    lng: FloatArray
    modes: dict[Mode, ModeGraph]

    @classmethod
    def build(
        cls, segments: RoadSegments, rules: AccessRules | None = None, min_component_nodes: int = 1000
    ) -> RoadGraph:
        """Directed per-mode graphs from way segments, under ``rules`` (the shipped ones by default)."""
        rules = rules or default_rules()
        a, b = _node_positions(segments.node_ids, segments.u), _node_positions(segments.node_ids, segments.v)
        points = np.stack([segments.lat, segments.lng], axis=1)
        # Never shorter than the straight line between the segment's ends (the parser rounds lengths).
        length = np.maximum(segments.length_m, elementwise_haversine_m(points[a], points[b]))
        modes = {
            mode: _mode_graph(mode, segments, rules, a, b, length, points, min_component_nodes)
            for mode in Mode
        }
        return cls(segments.node_ids, segments.lat, segments.lng, modes)


def _node_positions(node_ids: IntArray, wanted: IntArray) -> IntArray:
    """Row of each OSM node id of ``wanted`` in ``node_ids``."""
    order = np.argsort(node_ids, kind="stable")
    at = np.searchsorted(node_ids[order], wanted).clip(max=max(node_ids.size - 1, 0))
    if node_ids.size == 0 or not np.array_equal(node_ids[order][at], wanted):
        raise RoutingError("road segments refer to nodes the extract does not contain")
    return np.asarray(order[at], dtype=np.int64)


def _mode_graph(
    mode: Mode,
    segments: RoadSegments,
    rules: AccessRules,
    a: IntArray,
    b: IntArray,
    length: FloatArray,
    points: FloatArray,
    min_component_nodes: int,
) -> ModeGraph:
    n = points.shape[0]
    speed = mode_speeds_kmh(segments, mode, rules)
    forward, backward = oneway_directions(segments, mode, rules)
    usable = ~np.isnan(speed)
    go, back = usable & forward, usable & backward
    start = np.concatenate([a[go], b[back]])
    end = np.concatenate([b[go], a[back]])
    edge_m = np.concatenate([length[go], length[back]])
    # A zero-length edge (duplicate nodes) still needs a positive weight: csgraph drops zeros.
    edge_s = np.maximum(edge_m / (np.concatenate([speed[go], speed[back]]) / 3.6), 1e-3)
    keep = start != end
    start, end, edge_m, edge_s = start[keep], end[keep], edge_m[keep], edge_s[keep]
    # Parallel edges (two ways joining the same nodes): keep the fastest, with its own length.
    keys = start * n + end
    ranked = np.lexsort((edge_s, keys))
    first = ranked[np.concatenate([[True], keys[ranked][1:] != keys[ranked][:-1]])] if keys.size else ranked
    seconds = csr_matrix((edge_s[first], (start[first], end[first])), shape=(n, n))
    touched = np.zeros(n, dtype=bool)
    touched[start] = touched[end] = True
    _, labels = connected_components(seconds, directed=True, connection="strong")
    sizes = np.bincount(labels)
    snap_nodes = np.flatnonzero(touched & (sizes[labels] >= min_component_nodes)).astype(np.int64)
    tree = cKDTree(unit_vectors(points[snap_nodes, 0], points[snap_nodes, 1])) if snap_nodes.size else None
    return ModeGraph(mode, seconds, keys[first], edge_m[first], snap_nodes, tree)


@cache
def load_road_graph(path: Path) -> RoadGraph:
    """The graph of the PBF at ``path``, built once per process (parsing a city takes seconds)."""
    return RoadGraph.build(read_pbf(path))


class RoadGraphRouting:
    """A :class:`~nearx.routing.RoutingProvider` answering with shortest paths on a :class:`RoadGraph`."""

    def __init__(
        self,
        graph: RoadGraph,
        timezone: str,
        profile: RoutingProfile | None = None,
        max_snap_m: float = 300.0,
    ) -> None:
        self.graph = graph
        self._zone = ZoneInfo(timezone)
        self.profile = profile or default_profile()
        self.max_snap_m = max_snap_m

    def leg(
        self, origin: tuple[float, float], destination: tuple[float, float], mode: Mode, depart_at: datetime
    ) -> Leg:
        distance, duration = self.pairs(np.array([origin]), np.array([destination]), mode, depart_at)
        if not np.isfinite(duration[0]):
            raise NoRouteError(f"no {mode.value} route from {origin} to {destination} on the road graph")
        return Leg(distance_m=float(distance[0]), duration_s=float(duration[0]))

    def matrix(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        """``(distance_m, duration_s)`` between every origin and destination; ``inf`` where no path exists."""
        graph = self.graph.modes[mode]
        o_node, o_m = self._snap(graph, origins)
        d_node, d_m = self._snap(graph, destinations)
        path_m, path_s = self._node_paths(graph, o_node, d_node, outer=True)
        return self._door_to_door(mode, depart_at, path_m, path_s, o_m[:, None] + d_m[None, :])

    def pairs(
        self, origins: FloatArray, destinations: FloatArray, mode: Mode, depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        """Element-wise ``(distance_m, duration_s)``; ``inf`` where no path exists."""
        graph = self.graph.modes[mode]
        o_node, o_m = self._snap(graph, origins)
        d_node, d_m = self._snap(graph, destinations)
        if o_node.size != d_node.size:
            raise ValueError("pairs() needs as many origins as destinations")
        path_m, path_s = self._node_paths(graph, o_node, d_node, outer=False)
        return self._door_to_door(mode, depart_at, path_m, path_s, o_m + d_m)

    def _door_to_door(
        self, mode: Mode, depart_at: datetime, path_m: FloatArray, path_s: FloatArray, access_m: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        hour = ensure_utc(depart_at).astimezone(self._zone).hour
        door_speed = self.profile.speed_mps(mode, hour)
        congestion = door_speed / (self.profile.modes[mode].free_flow_kmh / 3.6)
        return path_m + access_m, path_s / congestion + access_m / door_speed

    def _snap(self, graph: ModeGraph, points: FloatArray) -> tuple[IntArray, FloatArray]:
        """Nearest usable node of each point and the straight metres to it."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if graph.snap_tree is None:
            raise OutsideGraphError(f"the road graph has no roads that {graph.mode.value} couriers may use")
        if not np.isfinite(points).all() or (np.abs(points) > (90.0, 180.0)).any():
            raise OutsideGraphError("coordinates must be finite, with |lat| <= 90 and |lng| <= 180")
        chord, at = graph.snap_tree.query(unit_vectors(points[:, 0], points[:, 1]))
        far = chord**2 > m_to_chord2(self.max_snap_m)
        if far.any():
            worst = int(np.argmax(chord))
            raise OutsideGraphError(
                f"{int(far.sum())} point(s) lie more than {self.max_snap_m:.0f} m from any road "
                f"{graph.mode.value} couriers may use, e.g. {tuple(points[worst].tolist())} "
                f"({chord2_to_m(chord[worst] ** 2):.0f} m away): outside the extract?"
            )
        return graph.snap_nodes[at], chord2_to_m(np.asarray(chord) ** 2)

    def _node_paths(
        self, graph: ModeGraph, origins: IntArray, destinations: IntArray, outer: bool
    ) -> tuple[FloatArray, FloatArray]:
        """Shortest-time paths between nodes: every pair (``outer``) or element-wise.

        Dijkstra runs from the side with fewer distinct nodes: from the origins on
        the graph, or from the destinations on the reversed graph.
        """
        o_unique, o_at = np.unique(origins, return_inverse=True)
        d_unique, d_at = np.unique(destinations, return_inverse=True)
        forward = o_unique.size <= d_unique.size
        sources, targets = (o_unique, destinations) if forward else (d_unique, origins)
        metres, seconds = _sweep(graph, sources, forward)
        if outer:
            if forward:
                cells = np.ix_(o_at, destinations)
                return metres[cells], seconds[cells]
            cells = np.ix_(d_at, origins)
            return metres[cells].T, seconds[cells].T
        rows = o_at if forward else d_at
        return metres[rows, targets], seconds[rows, targets]


def _sweep(graph: ModeGraph, sources: IntArray, forward: bool) -> tuple[FloatArray, FloatArray]:
    """Metres and seconds of the fastest path from each source to every node (to, if not ``forward``)."""
    n = graph.seconds.shape[0]
    adjacency = graph.seconds if forward else graph.seconds.T.tocsr()
    metres = np.empty((sources.size, n))
    seconds = np.empty((sources.size, n))
    step = max(1, _SWEEP_CELLS // max(n, 1))
    for lo in range(0, sources.size, step):
        chunk = sources[lo : lo + step]
        time, parent = dijkstra(adjacency, directed=True, indices=chunk, return_predecessors=True)
        seconds[lo : lo + step] = time
        metres[lo : lo + step] = _tree_lengths(graph, parent.astype(np.int64), forward)
        metres[lo : lo + step][~np.isfinite(time)] = np.inf
    return metres, seconds


def _tree_lengths(graph: ModeGraph, parent: IntArray, forward: bool) -> FloatArray:
    """Metres from the root of each shortest-path tree (one row per source) to every node.

    Pointer jumping: each node holds the length of the edge to its parent, then
    repeatedly adds its ancestor's running total and jumps to the ancestor's
    ancestor, so ``log2(depth)`` vectorised steps sum every root path.
    """
    node = np.broadcast_to(np.arange(parent.shape[1]), parent.shape)
    linked = parent >= 0
    total = np.zeros(parent.shape)
    start, end = (parent, node) if forward else (node, parent)
    total[linked] = graph.edge_lengths(start[linked], end[linked])
    ancestor = np.where(linked, parent, -1)
    while (ancestor >= 0).any():
        has = ancestor >= 0
        safe = np.where(has, ancestor, 0)
        total = total + np.where(has, np.take_along_axis(total, safe, axis=1), 0.0)
        ancestor = np.where(has, np.take_along_axis(ancestor, safe, axis=1), -1)
    return total
