"""One dispatch round: which courier takes which order(s), solved optimally on a sparse candidate set.

Pure and I/O-free so the API's dispatch loop, the serving scorer and the city
simulator run the very same policy. A round:

1. **Candidates.** For each order, the couriers nearest its pickup (H3 ring
   search, :mod:`nearx.proximity`) within a radius, with room for the order.
2. **Costs** (seconds). Predicted delivery time = ``max(time to pickup, time
   until ready) + pickup to drop-off`` from an :class:`EtaPredictor` (the routing
   provider today, the ETA model later), plus an emission penalty (kg CO2e of both
   legs for the courier's mode x ``seconds_per_kg_co2e``), minus a fairness bonus
   for couriers who have waited longest. Leaving an order for the next round costs
   ``unassigned_penalty_s``.
3. **Solve.** Emergency orders first (they get first pick of couriers), then the
   rest, each as a min-cost bipartite matching on the sparse graph (SciPy's
   LAPJVsp, ``min_weight_full_bipartite_matching``) with one private "wait"
   column per order so a full matching always exists. That matching is optimal
   for the single-order problem of each phase.
4. **Stacking.** Pairs of orders with nearby pickups and close ready times may
   ride with one courier. Each bundle is priced on its best pickup/drop-off
   sequence and replaces the two separate assignments (or a wait) only when it
   is strictly cheaper; partners come from a KD-tree batch radius query over
   the round's pickups; bundles are taken greedily by saving, each order and
   courier at most once. This step improves on the matching but is not a joint
   optimum over all bundles (a set-packing problem).

:func:`greedy_round` is the baseline: each order, emergency first, takes the
nearest free courier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from nearx.emissions import EmissionFactors, default_factors
from nearx.proximity import ProximityIndex, m_to_chord2, unit_vectors
from nearx.routing import Mode, RoutingProvider

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LatLng = tuple[float, float]


@dataclass(frozen=True, slots=True)
class DispatchOrder:
    id: str
    pickup: LatLng
    dropoff: LatLng
    ready_in_s: float = 0.0
    """Seconds from now until the merchant hands the order over (0 = ready)."""
    emergency: bool = False
    size: int = 1
    """Bag slots the order takes; a courier's ``capacity`` bounds the sum."""


@dataclass(frozen=True, slots=True)
class DispatchCourier:
    id: str
    position: LatLng
    mode: Mode
    capacity: int = 2
    idle_s: float = 0.0
    """How long the courier has waited for work: the fairness term favours the longest-waiting."""


@dataclass(frozen=True, slots=True)
class DispatchWeights:
    seconds_per_kg_co2e: float = 600.0
    """How many seconds of delivery time one kg of CO2e is worth."""
    fairness_s_per_idle_min: float = 5.0
    fairness_cap_min: float = 60.0
    unassigned_penalty_s: float = 4 * 3600.0
    candidate_radius_m: float = 6_000.0
    candidates_per_order: int = 12
    stacking: bool = True
    stack_pickup_radius_m: float = 500.0
    stack_ready_gap_s: float = 600.0
    stack_partners_per_order: int = 4


class EtaPredictor(Protocol):
    """Element-wise travel from ``origins[i]`` to ``destinations[i]`` in ``modes[i]``: ``(metres, seconds)``.

    The routing provider implements it today (:class:`RoutingEta`); the ETA
    model from serving/ plugs in by implementing the same method.
    """

    def travel(
        self, origins: FloatArray, destinations: FloatArray, modes: Sequence[Mode], depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]: ...


class RoutingEta:
    """An :class:`EtaPredictor` backed by a routing provider, one vectorised call per mode."""

    def __init__(self, routing: RoutingProvider) -> None:
        self._routing = routing

    def travel(
        self, origins: FloatArray, destinations: FloatArray, modes: Sequence[Mode], depart_at: datetime
    ) -> tuple[FloatArray, FloatArray]:
        codes = np.fromiter(map(_MODE_CODES.__getitem__, modes), dtype=np.int64, count=len(modes))
        distance = np.zeros(len(modes))
        duration = np.zeros(len(modes))
        for code in np.unique(codes).tolist():
            at = np.flatnonzero(codes == code)
            distance[at], duration[at] = self._routing.pairs(
                origins[at], destinations[at], _MODES[code], depart_at
            )
        return distance, duration


_MODES = tuple(Mode)
_MODE_CODES = {mode: code for code, mode in enumerate(_MODES)}


@dataclass(frozen=True, slots=True)
class Assignment:
    courier_id: str
    order_ids: tuple[str, ...]
    """One order, or two when stacked (in drop-off order)."""
    cost_s: float
    dropoff_eta_s: tuple[float, ...]
    """Predicted seconds from now until each order is delivered, aligned with ``order_ids``."""
    distance_m: float
    kg_co2e: float


@dataclass(slots=True)
class DispatchPlan:
    assignments: list[Assignment] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    total_cost_s: float = 0.0
    """Sum of assignment costs plus the wait penalty of every unassigned order: what the solver minimises."""


@dataclass(frozen=True, slots=True)
class DispatchContext:
    """Everything a round needs besides orders and couriers."""

    depart_at: datetime
    eta: EtaPredictor
    country: str
    weights: DispatchWeights = DispatchWeights()
    factors: EmissionFactors = field(default_factory=default_factors)
    excluded: frozenset[tuple[str, str]] = frozenset()
    """``(order id, courier id)`` pairs never to propose again, e.g. offers the courier declined."""

    def kg_per_m(self, modes: Sequence[Mode]) -> FloatArray:
        per_mode = {mode: self.factors.kg_per_km(mode, self.country) / 1000.0 for mode in set(modes)}
        return np.array([per_mode[mode] for mode in modes], dtype=np.float64)

    def fairness_bonus_s(self, idle_s: FloatArray) -> FloatArray:
        weights = self.weights
        return np.minimum(idle_s / 60.0, weights.fairness_cap_min) * weights.fairness_s_per_idle_min


def min_cost_assignment(
    rows: IntArray, cols: IntArray, costs: FloatArray, n_rows: int, n_cols: int, unassigned_cost: float
) -> IntArray:
    """Optimal partial matching: for each row the matched column, or -1 when it waits.

    Minimises ``sum(costs of chosen edges) + unassigned_cost * (rows left unmatched)``
    over matchings that use each column at most once and only the given edges
    (unique ``(row, col)`` pairs). Each row gets a private "wait" column, so a
    full matching of rows always exists, and costs are shifted to be strictly
    positive (SciPy treats zero entries as absent); the shift adds the same
    amount to every full matching, so the optimum is unchanged.
    """
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    lowest = min(float(costs.min()) if costs.size else unassigned_cost, unassigned_cost)
    shift = 1.0 - lowest
    graph = csr_matrix(
        (
            np.concatenate([costs + shift, np.full(n_rows, unassigned_cost + shift)]),
            (np.concatenate([rows, np.arange(n_rows)]), np.concatenate([cols, n_cols + np.arange(n_rows)])),
        ),
        shape=(n_rows, n_cols + n_rows),
    )
    matched_rows, matched_cols = min_weight_full_bipartite_matching(graph)
    result = np.full(n_rows, -1, dtype=np.int64)
    result[matched_rows] = np.where(matched_cols < n_cols, matched_cols, -1)
    return result


@dataclass(frozen=True, slots=True)
class _Candidates:
    rows: IntArray
    cols: IntArray
    cost_s: FloatArray
    dropoff_eta_s: FloatArray
    distance_m: FloatArray
    kg_co2e: FloatArray


def pair_costs(
    orders: Sequence[DispatchOrder],
    couriers: Sequence[DispatchCourier],
    rows: IntArray,
    cols: IntArray,
    context: DispatchContext,
) -> _Candidates:
    """Cost of courier ``cols[i]`` delivering order ``rows[i]`` alone, vectorised over the pairs."""
    col_list = cols.tolist()
    modes = [couriers[c].mode for c in col_list]
    positions = np.array([c.position for c in couriers], dtype=np.float64).reshape(-1, 2)[cols]
    pickups = np.array([o.pickup for o in orders], dtype=np.float64).reshape(-1, 2)[rows]
    dropoffs = np.array([o.dropoff for o in orders], dtype=np.float64).reshape(-1, 2)[rows]
    ready = np.array([o.ready_in_s for o in orders], dtype=np.float64)[rows]
    idle = np.array([c.idle_s for c in couriers], dtype=np.float64)[cols]
    legs_m, legs_s = context.eta.travel(  # both legs in one call: one model or routing batch
        np.concatenate([positions, pickups]),
        np.concatenate([pickups, dropoffs]),
        modes * 2,
        context.depart_at,
    )
    to_pickup_m, trip_m = np.split(legs_m, 2)
    to_pickup_s, trip_s = np.split(legs_s, 2)
    dropoff_eta = np.maximum(to_pickup_s, ready) + trip_s
    distance = to_pickup_m + trip_m
    kg = distance * context.kg_per_m(modes)
    cost = dropoff_eta + kg * context.weights.seconds_per_kg_co2e - context.fairness_bonus_s(idle)
    return _Candidates(rows, cols, cost, dropoff_eta, distance, kg)


def _candidate_pairs(
    orders: Sequence[DispatchOrder], couriers: Sequence[DispatchCourier], context: DispatchContext
) -> tuple[IntArray, IntArray]:
    """Nearby couriers with room, per order, from one H3 ring index over the couriers."""
    weights = context.weights
    if not orders or not couriers:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    index = ProximityIndex(  # rebuilt every round: the h3-py walk's per-cell caches outlive it
        [c.position[0] for c in couriers], [c.position[1] for c in couriers], precompute_geometry=False
    )
    answers = index.nearest_many(
        [o.pickup[0] for o in orders],
        [o.pickup[1] for o in orders],
        weights.candidates_per_order,
        weights.candidate_radius_m,
    )
    rows = np.repeat(np.arange(len(orders)), [len(answer) for answer in answers])
    cols = np.concatenate([answer.positions for answer in answers])
    capacity = np.array([c.capacity for c in couriers], dtype=np.int64)
    size = np.array([o.size for o in orders], dtype=np.int64)
    room = capacity[cols] >= size[rows]
    rows, cols = rows[room], cols[room]
    if context.excluded:
        allowed = [
            (orders[r].id, couriers[c].id) not in context.excluded
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
        rows, cols = rows[allowed], cols[allowed]
    return rows.astype(np.int64), cols.astype(np.int64)


def _solve_phase(
    orders: Sequence[DispatchOrder], couriers: Sequence[DispatchCourier], context: DispatchContext
) -> tuple[IntArray, _Candidates]:
    """The phase's optimal matching (per order, its courier or -1) and the priced candidate pairs."""
    rows, cols = _candidate_pairs(orders, couriers, context)
    candidates = pair_costs(orders, couriers, rows, cols, context)
    matched = min_cost_assignment(
        rows, cols, candidates.cost_s, len(orders), len(couriers), context.weights.unassigned_penalty_s
    )
    return matched, candidates


def optimal_round(
    orders: Sequence[DispatchOrder], couriers: Sequence[DispatchCourier], context: DispatchContext
) -> DispatchPlan:
    """The round's plan: emergency orders matched first, then the rest, then profitable stacking."""
    plan = DispatchPlan()
    free = list(couriers)
    for phase in (
        [order for order in orders if order.emergency],
        [order for order in orders if not order.emergency],
    ):
        if not phase:
            continue
        matched, candidates = _solve_phase(phase, free, context)
        singles = _singles(phase, free, matched, candidates)
        if context.weights.stacking and not phase[0].emergency:
            singles = _stack(phase, free, singles, context)
        used = {assignment.courier_id for assignment in singles.values() if assignment is not None}
        _collect(plan, phase, singles, context.weights.unassigned_penalty_s)
        free = [courier for courier in free if courier.id not in used]
    return plan


def greedy_round(
    orders: Sequence[DispatchOrder], couriers: Sequence[DispatchCourier], context: DispatchContext
) -> DispatchPlan:
    """Baseline: emergency first, then by ready time, each order takes the nearest free courier with room."""
    plan = DispatchPlan()
    if not couriers:
        plan.unassigned = [order.id for order in orders]
        plan.total_cost_s = len(orders) * context.weights.unassigned_penalty_s
        return plan
    index = ProximityIndex(  # rebuilt every round: the h3-py walk's per-cell caches outlive it
        [c.position[0] for c in couriers], [c.position[1] for c in couriers], precompute_geometry=False
    )
    taken = np.zeros(len(couriers), dtype=bool)
    sequence = sorted(range(len(orders)), key=lambda i: (not orders[i].emergency, orders[i].ready_in_s, i))
    for row in sequence:
        order = orders[row]
        near = index.nearest(
            order.pickup[0], order.pickup[1], len(couriers), context.weights.candidate_radius_m
        )
        chosen = next(
            (
                int(c)
                for c in near.positions.tolist()
                if not taken[c]
                and couriers[c].capacity >= order.size
                and (order.id, couriers[c].id) not in context.excluded
            ),
            None,
        )
        if chosen is None:
            plan.unassigned.append(order.id)
            plan.total_cost_s += context.weights.unassigned_penalty_s
            continue
        taken[chosen] = True
        cost = pair_costs([order], couriers, np.array([0]), np.array([chosen]), context)
        plan.assignments.append(
            Assignment(
                couriers[chosen].id,
                (order.id,),
                float(cost.cost_s[0]),
                (float(cost.dropoff_eta_s[0]),),
                float(cost.distance_m[0]),
                float(cost.kg_co2e[0]),
            )
        )
        plan.total_cost_s += float(cost.cost_s[0])
    return plan


def _singles(
    orders: Sequence[DispatchOrder],
    couriers: Sequence[DispatchCourier],
    matched: IntArray,
    candidates: _Candidates,
) -> dict[int, Assignment | None]:
    singles: dict[int, Assignment | None] = dict.fromkeys(range(len(orders)))
    # pairs are unique, so each matched order has exactly one candidate with its courier
    for i in np.flatnonzero(candidates.cols == matched[candidates.rows]).tolist():
        row, col = int(candidates.rows[i]), int(candidates.cols[i])
        singles[row] = Assignment(
            couriers[col].id,
            (orders[row].id,),
            float(candidates.cost_s[i]),
            (float(candidates.dropoff_eta_s[i]),),
            float(candidates.distance_m[i]),
            float(candidates.kg_co2e[i]),
        )
    return singles


def _collect(
    plan: DispatchPlan,
    orders: Sequence[DispatchOrder],
    singles: dict[int, Assignment | None],
    penalty_s: float,
) -> None:
    seen: set[int] = set()
    for row in range(len(orders)):
        assignment = singles[row]
        if assignment is None:
            plan.unassigned.append(orders[row].id)
            plan.total_cost_s += penalty_s
        elif id(assignment) not in seen:  # a stacked assignment is shared by its two orders
            seen.add(id(assignment))
            plan.assignments.append(assignment)
            plan.total_cost_s += assignment.cost_s


_SEQUENCES = (  # (first pickup, second pickup, first drop-off, second drop-off) as 0 = order a, 1 = order b
    (0, 1, 0, 1),
    (0, 1, 1, 0),
    (1, 0, 0, 1),
    (1, 0, 1, 0),
)


@dataclass(frozen=True, slots=True)
class _Bundles:
    """Bundles priced on their best pickup/drop-off sequence, one entry per bundle."""

    cost_s: FloatArray
    first_eta_s: FloatArray
    """Predicted seconds until the order dropped first is delivered (``second_eta_s``: the other)."""
    second_eta_s: FloatArray
    distance_m: FloatArray
    kg_co2e: FloatArray
    a_first: npt.NDArray[np.bool_]
    """Whether the bundle's first order (``firsts[i]``) is the one dropped first."""

    def assignment(self, i: int, first: DispatchOrder, second: DispatchOrder, courier_id: str) -> Assignment:
        order_ids = (first.id, second.id) if self.a_first[i] else (second.id, first.id)
        return Assignment(
            courier_id,
            order_ids,
            float(self.cost_s[i]),
            (float(self.first_eta_s[i]), float(self.second_eta_s[i])),
            float(self.distance_m[i]),
            float(self.kg_co2e[i]),
        )


def _price_bundles(
    firsts: Sequence[DispatchOrder],
    seconds: Sequence[DispatchOrder],
    couriers: Sequence[DispatchCourier],
    context: DispatchContext,
) -> _Bundles:
    """For each ``(firsts[i], seconds[i], couriers[i])``: the courier carrying both, best sequence.

    Vectorised over the bundles: four sequences x four legs, all in one travel call.
    """
    modes = [courier.mode for courier in couriers]
    start = np.array([c.position for c in couriers], dtype=np.float64).reshape(-1, 2)
    pickups = [
        np.array([o.pickup for o in side], dtype=np.float64).reshape(-1, 2) for side in (firsts, seconds)
    ]
    dropoffs = [
        np.array([o.dropoff for o in side], dtype=np.float64).reshape(-1, 2) for side in (firsts, seconds)
    ]
    ready = [np.array([o.ready_in_s for o in side], dtype=np.float64) for side in (firsts, seconds)]
    kg_per_m = context.kg_per_m(modes)
    bonus = context.fairness_bonus_s(np.array([c.idle_s for c in couriers], dtype=np.float64))
    routes = [[start, pickups[p1], pickups[p2], dropoffs[d1], dropoffs[d2]] for p1, p2, d1, d2 in _SEQUENCES]
    legs_m, legs_s = context.eta.travel(  # every leg of every sequence in one call, shape (4, 4, bundles)
        np.concatenate([stops[i] for stops in routes for i in range(4)]),
        np.concatenate([stops[i + 1] for stops in routes for i in range(4)]),
        modes * 16,
        context.depart_at,
    )
    legs_m, legs_s = legs_m.reshape(4, 4, -1), legs_s.reshape(4, 4, -1)
    at_p1 = np.maximum(legs_s[:, 0], np.stack([ready[p1] for p1, _, _, _ in _SEQUENCES]))
    at_p2 = np.maximum(at_p1 + legs_s[:, 1], np.stack([ready[p2] for _, p2, _, _ in _SEQUENCES]))
    at_d1 = at_p2 + legs_s[:, 2]
    at_d2 = at_d1 + legs_s[:, 3]
    distance = legs_m.sum(axis=1)
    kg = distance * kg_per_m
    costs = at_d1 + at_d2 + kg * context.weights.seconds_per_kg_co2e - bonus
    best = np.argmin(costs, axis=0)
    pick = (best, np.arange(best.size))
    return _Bundles(
        cost_s=costs[pick],
        first_eta_s=at_d1[pick],
        second_eta_s=at_d2[pick],
        distance_m=distance[pick],
        kg_co2e=kg[pick],
        a_first=np.array([d1 == 0 for _, _, d1, _ in _SEQUENCES])[best],
    )


def bundle_costs(
    firsts: Sequence[DispatchOrder],
    seconds: Sequence[DispatchOrder],
    couriers: Sequence[DispatchCourier],
    context: DispatchContext,
) -> list[Assignment]:
    """For each ``(firsts[i], seconds[i], couriers[i])``: the courier carrying both, best sequence."""
    if not firsts:
        return []
    bundles = _price_bundles(firsts, seconds, couriers, context)
    return [
        bundles.assignment(i, first, second, courier.id)
        for i, (first, second, courier) in enumerate(zip(firsts, seconds, couriers, strict=True))
    ]


def bundle_cost(
    first: DispatchOrder, second: DispatchOrder, courier: DispatchCourier, context: DispatchContext
) -> Assignment:
    """One courier carrying both orders, on the cheapest pickup/drop-off sequence."""
    return bundle_costs([first], [second], [courier], context)[0]


def _single_cost(assignment: Assignment | None, weights: DispatchWeights) -> float:
    return weights.unassigned_penalty_s if assignment is None else assignment.cost_s


def _stack_partners(orders: Sequence[DispatchOrder], weights: DispatchWeights) -> list[tuple[int, int]]:
    """Order pairs ``(a, b)``, ``a < b``, sorted, with pickups within the stacking radius and close
    ready times (a KD-tree batch query)."""
    xyz = unit_vectors([o.pickup[0] for o in orders], [o.pickup[1] for o in orders])
    k = min(weights.stack_partners_per_order + 1, len(orders))
    _, near = cKDTree(xyz).query(
        xyz, k=k, distance_upper_bound=math.sqrt(m_to_chord2(weights.stack_pickup_radius_m))
    )
    a = np.repeat(np.arange(len(orders)), k)
    b = np.asarray(near).reshape(-1)  # len(orders) where fewer than k lie within the radius
    ready = np.array([o.ready_in_s for o in orders], dtype=np.float64)
    real = (b != a) & (b < len(orders))
    a, b = a[real], b[real]
    close = np.abs(ready[a] - ready[b]) <= weights.stack_ready_gap_s
    a, b = a[close], b[close]
    keys = np.unique(np.minimum(a, b) * len(orders) + np.maximum(a, b))
    return list(zip((keys // len(orders)).tolist(), (keys % len(orders)).tolist(), strict=True))


def _stack(
    orders: Sequence[DispatchOrder],
    couriers: Sequence[DispatchCourier],
    singles: dict[int, Assignment | None],
    context: DispatchContext,
) -> dict[int, Assignment | None]:
    """Replace two single assignments (or a wait) by one bundle where that is strictly cheaper."""
    weights = context.weights
    if len(orders) < 2:
        return singles
    by_id = {courier.id: courier for courier in couriers}
    firsts: list[int] = []
    seconds: list[int] = []
    carriers: list[DispatchCourier] = []
    for a, b in _stack_partners(orders, weights):
        for single in (singles[a], singles[b]):
            if (
                single is not None
                and by_id[single.courier_id].capacity >= orders[a].size + orders[b].size
                and not {(orders[a].id, single.courier_id), (orders[b].id, single.courier_id)}
                & context.excluded
            ):
                firsts.append(a)
                seconds.append(b)
                carriers.append(by_id[single.courier_id])
    if not firsts:
        return singles
    bundles = _price_bundles([orders[a] for a in firsts], [orders[b] for b in seconds], carriers, context)
    alone = np.array([_single_cost(singles[row], weights) for row in range(len(orders))])
    saving = alone[firsts] + alone[seconds] - bundles.cost_s
    options = np.flatnonzero(saving > 0)
    taken_orders: set[int] = set()
    taken_couriers: set[str] = set()
    result = dict(singles)
    for i in options[np.argsort(-saving[options], kind="stable")].tolist():  # largest saving first
        a, b = firsts[i], seconds[i]
        involved = {single.courier_id for single in (singles[a], singles[b]) if single is not None}
        if a in taken_orders or b in taken_orders or involved & taken_couriers:
            continue
        taken_orders |= {a, b}
        taken_couriers |= involved
        result[a] = result[b] = bundles.assignment(i, orders[a], orders[b], carriers[i].id)
    return result
