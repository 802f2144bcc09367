"""The dispatch round: optimal against brute force, emergency first, stacking only when cheaper."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nearx.dispatch import (
    DispatchContext,
    DispatchCourier,
    DispatchOrder,
    DispatchPlan,
    DispatchWeights,
    RoutingEta,
    _stack_partners,
    bundle_cost,
    bundle_costs,
    greedy_round,
    min_cost_assignment,
    optimal_round,
    pair_costs,
)
from nearx.geo import haversine_m
from nearx.routing import HaversineRouting, Mode

NOON = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
ETA = RoutingEta(HaversineRouting("kathmandu", "Asia/Kathmandu"))
ALL_PAIRS = DispatchWeights(candidates_per_order=50, candidate_radius_m=50_000.0, stacking=False)


def _context(weights: DispatchWeights = ALL_PAIRS) -> DispatchContext:
    return DispatchContext(depart_at=NOON, eta=ETA, country="NP", weights=weights)


def _consistent(plan: DispatchPlan, orders: Sequence[DispatchOrder]) -> None:
    assigned = [order_id for a in plan.assignments for order_id in a.order_ids]
    assert sorted(assigned + plan.unassigned) == sorted(o.id for o in orders)
    couriers = [a.courier_id for a in plan.assignments]
    assert len(set(couriers)) == len(couriers)


def _brute_force(costs: dict[tuple[int, int], float], n_rows: int, n_cols: int, wait: float) -> float:
    best = float("inf")
    for choice in itertools.product(*[[-1, *range(n_cols)] for _ in range(n_rows)]):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)) or any(c >= 0 and (r, c) not in costs for r, c in enumerate(choice)):
            continue
        best = min(best, sum(wait if c < 0 else costs[(r, c)] for r, c in enumerate(choice)))
    return best


@settings(max_examples=200, deadline=None)
@given(
    n_rows=st.integers(0, 5),
    n_cols=st.integers(0, 5),
    data=st.data(),
    wait=st.floats(-50, 500),
)
def test_min_cost_assignment_matches_brute_force(
    n_rows: int, n_cols: int, data: st.DataObject, wait: float
) -> None:
    pairs = [(r, c) for r in range(n_rows) for c in range(n_cols)]
    edges = data.draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([]))
    costs = {edge: data.draw(st.floats(-100, 1000)) for edge in edges}
    rows = np.array([r for r, _ in edges], dtype=np.int64)
    cols = np.array([c for _, c in edges], dtype=np.int64)
    values = np.array([costs[e] for e in edges], dtype=np.float64)
    matched = min_cost_assignment(rows, cols, values, n_rows, n_cols, wait)
    used = [c for c in matched.tolist() if c >= 0]
    assert len(used) == len(set(used))
    total = sum(wait if c < 0 else costs[(r, c)] for r, c in enumerate(matched.tolist()))
    assert total == pytest.approx(_brute_force(costs, n_rows, n_cols, wait), abs=1e-6)


def _orders(rng: np.random.Generator, n: int, emergency: float = 0.0) -> list[DispatchOrder]:
    return [
        DispatchOrder(
            id=f"o{i}",
            pickup=(27.70 + rng.uniform(0, 0.03), 85.30 + rng.uniform(0, 0.03)),
            dropoff=(27.70 + rng.uniform(0, 0.03), 85.30 + rng.uniform(0, 0.03)),
            ready_in_s=float(rng.choice([0.0, 300.0, 900.0])),
            emergency=bool(rng.random() < emergency),
        )
        for i in range(n)
    ]


def _couriers(rng: np.random.Generator, n: int) -> list[DispatchCourier]:
    modes = list(Mode)
    return [
        DispatchCourier(
            id=f"c{i}",
            position=(27.70 + rng.uniform(0, 0.03), 85.30 + rng.uniform(0, 0.03)),
            mode=modes[int(rng.integers(0, len(modes)))],
            idle_s=float(rng.uniform(0, 3600)),
        )
        for i in range(n)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_orders=st.integers(1, 5), n_couriers=st.integers(0, 5))
def test_round_is_optimal_against_brute_force(seed: int, n_orders: int, n_couriers: int) -> None:
    rng = np.random.default_rng(seed)
    orders, couriers = _orders(rng, n_orders), _couriers(rng, n_couriers)
    context = _context(replace(ALL_PAIRS, unassigned_penalty_s=2_500.0))
    plan = optimal_round(orders, couriers, context)
    _consistent(plan, orders)
    rows = np.repeat(np.arange(n_orders), n_couriers)
    cols = np.tile(np.arange(n_couriers), n_orders)
    every = pair_costs(orders, couriers, rows, cols, context)
    costs = {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, every.cost_s, strict=True)}
    assert plan.total_cost_s == pytest.approx(_brute_force(costs, n_orders, n_couriers, 2_500.0), abs=1e-6)
    greedy = greedy_round(orders, couriers, context)
    _consistent(greedy, orders)
    assert plan.total_cost_s <= greedy.total_cost_s + 1e-6


def test_emergency_orders_pick_first() -> None:
    courier = DispatchCourier("c0", (27.7000, 85.3000), Mode.MOTORBIKE)
    routine = DispatchOrder("routine", (27.7001, 85.3001), (27.7050, 85.3050))
    insulin = DispatchOrder("insulin", (27.7200, 85.3200), (27.7250, 85.3250), emergency=True)
    plan = optimal_round([routine, insulin], [courier], _context())
    assert [a.order_ids for a in plan.assignments] == [("insulin",)]
    assert plan.unassigned == ["routine"]
    # without the flag the nearby routine order would have won
    calm = DispatchOrder("insulin", insulin.pickup, insulin.dropoff)
    assert [a.order_ids for a in optimal_round([routine, calm], [courier], _context()).assignments] == [
        ("routine",)
    ]
    assert [a.order_ids for a in greedy_round([routine, insulin], [courier], _context()).assignments] == [
        ("insulin",)
    ]


def test_stacks_two_orders_from_one_kitchen_when_couriers_are_short() -> None:
    weights = replace(ALL_PAIRS, stacking=True)
    courier = DispatchCourier("c0", (27.7000, 85.3000), Mode.EV_SCOOTER, capacity=2)
    kitchen = (27.7050, 85.3050)
    first = DispatchOrder("a", kitchen, (27.7100, 85.3100))
    second = DispatchOrder("b", kitchen, (27.7110, 85.3105))
    plan = optimal_round([first, second], [courier], _context(weights))
    assert len(plan.assignments) == 1
    assert set(plan.assignments[0].order_ids) == {"a", "b"}
    assert plan.unassigned == []
    unstacked = optimal_round([first, second], [courier], _context())
    assert plan.total_cost_s < unstacked.total_cost_s
    # a bag that holds one order cannot stack
    small = DispatchCourier("c0", courier.position, Mode.EV_SCOOTER, capacity=1)
    assert len(optimal_round([first, second], [small], _context(weights)).unassigned) == 1


def test_no_stacking_when_separate_couriers_are_cheaper() -> None:
    weights = replace(ALL_PAIRS, stacking=True)
    kitchen = (27.7050, 85.3050)
    orders = [
        DispatchOrder("a", kitchen, (27.7300, 85.3300)),
        DispatchOrder("b", kitchen, (27.6800, 85.2800)),
    ]
    couriers = [
        DispatchCourier("c0", (27.7051, 85.3051), Mode.E_BIKE),
        DispatchCourier("c1", (27.7049, 85.3049), Mode.E_BIKE),
    ]
    plan = optimal_round(orders, couriers, _context(weights))
    assert sorted(a.order_ids for a in plan.assignments) == [("a",), ("b",)]
    bundle = bundle_cost(orders[0], orders[1], couriers[0], _context(weights))
    assert bundle.cost_s > plan.total_cost_s  # opposite directions: one courier for both is slower


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_orders=st.integers(2, 12), n_couriers=st.integers(1, 8))
def test_stacking_never_raises_the_round_cost(seed: int, n_orders: int, n_couriers: int) -> None:
    rng = np.random.default_rng(seed)
    orders, couriers = _orders(rng, n_orders, emergency=0.2), _couriers(rng, n_couriers)
    stacked = optimal_round(orders, couriers, _context(replace(ALL_PAIRS, stacking=True)))
    single = optimal_round(orders, couriers, _context())
    _consistent(stacked, orders)
    assert stacked.total_cost_s <= single.total_cost_s + 1e-6
    for assignment in stacked.assignments:
        assert len(assignment.order_ids) in (1, 2)


def test_cleaner_modes_and_long_idle_couriers_are_preferred_at_equal_distance() -> None:
    order = DispatchOrder("o", (27.7050, 85.3050), (27.7150, 85.3150))
    spot = (27.7000, 85.3000)
    ev = DispatchCourier("ev", spot, Mode.EV_SCOOTER)
    petrol = DispatchCourier("petrol", spot, Mode.MOTORBIKE)
    plan = optimal_round([order], [petrol, ev], _context())
    assert plan.assignments[0].courier_id == "ev"
    waited = DispatchCourier("waited", spot, Mode.MOTORBIKE, idle_s=3000)
    fresh = DispatchCourier("fresh", spot, Mode.MOTORBIKE, idle_s=0)
    assert optimal_round([order], [fresh, waited], _context()).assignments[0].courier_id == "waited"


def test_far_couriers_are_not_candidates() -> None:
    order = DispatchOrder("o", (27.7050, 85.3050), (27.7150, 85.3150))
    far = DispatchCourier("far", (27.60, 85.50), Mode.CAR)
    plan = optimal_round([order], [far], _context(DispatchWeights(candidate_radius_m=3_000.0)))
    assert plan.assignments == []
    assert plan.unassigned == ["o"]
    assert plan.total_cost_s == DispatchWeights().unassigned_penalty_s


def test_excluded_pairs_are_never_proposed() -> None:
    order = DispatchOrder("o", (27.7050, 85.3050), (27.7150, 85.3150))
    near = DispatchCourier("near", (27.7051, 85.3051), Mode.E_BIKE)
    far = DispatchCourier("far", (27.7200, 85.3200), Mode.E_BIKE)
    context = replace(_context(), excluded=frozenset({("o", "near")}))
    assert optimal_round([order], [near, far], context).assignments[0].courier_id == "far"
    assert greedy_round([order], [near, far], context).assignments[0].courier_id == "far"
    assert optimal_round([order], [near], context).unassigned == ["o"]


def test_routing_eta_prices_each_pair_in_its_own_mode() -> None:
    """One call over mixed modes equals the routing provider asked one mode at a time."""
    rng = np.random.default_rng(4)
    origins = rng.uniform((27.65, 85.25), (27.75, 85.40), (40, 2))
    destinations = rng.uniform((27.65, 85.25), (27.75, 85.40), (40, 2))
    modes = [list(Mode)[int(i)] for i in rng.integers(0, len(Mode), 40)]
    metres, seconds = ETA.travel(origins, destinations, modes, NOON)
    routing = HaversineRouting("kathmandu", "Asia/Kathmandu")
    for i, mode in enumerate(modes):
        expected_m, expected_s = routing.pairs(origins[i : i + 1], destinations[i : i + 1], mode, NOON)
        assert (metres[i], seconds[i]) == pytest.approx((expected_m[0], expected_s[0]))
    assert [len(part) for part in ETA.travel(origins[:0], destinations[:0], [], NOON)] == [0, 0]


def test_stack_partners_are_every_close_pair_when_few_orders() -> None:
    """Fewer orders than partners per order: exactly the pairs within the radius and the ready gap."""
    rng = np.random.default_rng(6)
    weights = DispatchWeights(stack_partners_per_order=10, stack_pickup_radius_m=400.0)
    orders = [
        DispatchOrder(
            f"o{i}",
            (27.700 + rng.uniform(0, 0.006), 85.300 + rng.uniform(0, 0.006)),
            (27.71, 85.31),
            ready_in_s=float(rng.choice([0.0, 300.0, 900.0])),
        )
        for i in range(10)
    ]
    expected = [
        (a, b)
        for a, b in itertools.combinations(range(len(orders)), 2)
        if haversine_m(*orders[a].pickup, *orders[b].pickup) <= 400.0
        and abs(orders[a].ready_in_s - orders[b].ready_in_s) <= weights.stack_ready_gap_s
    ]
    assert expected  # the example has close pairs and far ones
    assert len(expected) < 45
    assert _stack_partners(orders, weights) == expected


def test_bundles_are_priced_on_their_cheapest_sequence() -> None:
    """The vectorised bundle price, against each of the four sequences walked leg by leg."""
    rng = np.random.default_rng(8)
    firsts, seconds, couriers = _orders(rng, 6), _orders(rng, 6), _couriers(rng, 6)
    context = _context()
    routing = HaversineRouting("kathmandu", "Asia/Kathmandu")
    for first, second, courier, bundle in zip(
        firsts, seconds, couriers, bundle_costs(firsts, seconds, couriers, context), strict=True
    ):
        options = []
        for order_a, order_b in itertools.permutations((first, second)):  # pickup order
            for drop_a, drop_b in itertools.permutations((first, second)):  # drop-off order
                stops = [courier.position, order_a.pickup, order_b.pickup, drop_a.dropoff, drop_b.dropoff]
                legs = [routing.leg(stops[i], stops[i + 1], courier.mode, NOON) for i in range(4)]
                at = max(legs[0].duration_s, order_a.ready_in_s)
                at = max(at + legs[1].duration_s, order_b.ready_in_s)
                first_drop = at + legs[2].duration_s
                second_drop = first_drop + legs[3].duration_s
                metres = sum(leg.distance_m for leg in legs)
                kg = metres * context.kg_per_m([courier.mode])[0]
                cost = first_drop + second_drop + kg * context.weights.seconds_per_kg_co2e
                cost -= float(context.fairness_bonus_s(np.array([courier.idle_s]))[0])
                options.append((cost, (drop_a.id, drop_b.id), (first_drop, second_drop), metres, kg))
        cost, order_ids, etas, metres, kg = min(options, key=lambda option: option[0])
        assert bundle.courier_id == courier.id
        assert bundle.order_ids == order_ids
        assert bundle.cost_s == pytest.approx(cost)
        assert bundle.dropoff_eta_s == pytest.approx(etas)
        assert (bundle.distance_m, bundle.kg_co2e) == pytest.approx((metres, kg))
