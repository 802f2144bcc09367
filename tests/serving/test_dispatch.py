"""Dispatch leg costs from real ETA and green champions, and the green preference in a real round."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from nearx.dispatch import DispatchContext, DispatchCourier, DispatchOrder, RoutingEta, optimal_round
from nearx.routing import HaversineRouting, Mode
from serving.dispatch import LEG_BAND, MISSED_PROMISE_S, ModelEta
from serving.eta import GREEN_MIN_P_ON_TIME, EtaScorer
from serving.online import OnlineFeatures
from serving.registry import ModelRegistry
from tests.serving.conftest import TrainedCity

TZ = "Asia/Kathmandu"
AT = datetime(2026, 1, 12, 7, 30, tzinfo=UTC)
PICKUP = (27.7172, 85.3240)
DROPOFF = (27.7442, 85.3240)
"""Three kilometres north of the pickup."""


def _scorer(registry: ModelRegistry, city: TrainedCity) -> EtaScorer:
    return EtaScorer(registry, OnlineFeatures(city.store), HaversineRouting("kathmandu", TZ), "NP")


def _legs(km: list[float]) -> tuple[np.ndarray, np.ndarray]:
    origins = np.array([PICKUP] * len(km))
    destinations = np.array([(PICKUP[0] + k / 111.0, PICKUP[1]) for k in km])
    return origins, destinations


def test_leg_times_come_from_the_eta_champion_within_the_routing_band(trained_city: TrainedCity) -> None:
    eta = ModelEta(_scorer(trained_city.registry, trained_city), TZ)
    origins, destinations = _legs([0.5, 1.0, 2.0, 4.0, 6.0])
    modes = [Mode.MOTORBIKE] * 5
    metres, seconds = eta.travel(origins, destinations, modes, AT)
    routing_m, routing_s = RoutingEta(HaversineRouting("kathmandu", TZ)).travel(
        origins, destinations, modes, AT
    )
    assert eta.degraded is None
    np.testing.assert_allclose(metres, routing_m)
    assert np.all(seconds >= LEG_BAND[0] * routing_s - 1e-9)
    assert np.all(seconds <= LEG_BAND[1] * routing_s + 1e-9)
    assert seconds[-1] > seconds[0]  # six kilometres take longer than half of one


def test_without_a_champion_the_legs_are_the_routing_providers(trained_city: TrainedCity) -> None:
    eta = ModelEta(_scorer(ModelRegistry(trained_city.registry.source, {}), trained_city), TZ)
    origins, destinations = _legs([1.0, 3.0])
    modes = [Mode.E_BIKE, Mode.MOTORBIKE]
    got = eta.travel(origins, destinations, modes, AT)
    want = RoutingEta(HaversineRouting("kathmandu", TZ)).travel(origins, destinations, modes, AT)
    np.testing.assert_allclose(got, want)
    assert eta.degraded == "no_model"


def _verdicts(scorer: EtaScorer) -> dict[float, float]:
    """The green champion's P(on time) for an e-bike on the trip, by the promise it must keep."""
    eta = ModelEta(scorer, TZ)
    promises = np.arange(300.0, 4000.0, 300.0)
    legs = eta._trips(np.array([PICKUP] * len(promises)), np.array([DROPOFF] * len(promises)), AT)
    p_on_time = scorer.model_p_on_time(legs, [Mode.E_BIKE] * len(promises), promises)
    assert not isinstance(p_on_time, str), p_on_time
    return dict(zip(promises.tolist(), p_on_time.tolist(), strict=True))


def test_a_low_emission_courier_is_charged_only_where_the_green_model_says_the_promise_fails(
    trained_city: TrainedCity,
) -> None:
    scorer = _scorer(trained_city.registry, trained_city)
    trip = np.array([PICKUP]), np.array([DROPOFF])
    _, unchecked = ModelEta(scorer, TZ).travel(*trip, [Mode.E_BIKE], AT)
    for promised, p_on_time in _verdicts(scorer).items():
        checked = ModelEta(scorer, TZ, {(PICKUP, DROPOFF): promised})
        _, bike = checked.travel(*trip, [Mode.E_BIKE], AT)
        _, moto = checked.travel(*trip, [Mode.MOTORBIKE], AT)
        _, moto_unchecked = ModelEta(scorer, TZ).travel(*trip, [Mode.MOTORBIKE], AT)
        assert bike[0] - unchecked[0] == (MISSED_PROMISE_S if p_on_time < GREEN_MIN_P_ON_TIME else 0.0)
        assert moto[0] == moto_unchecked[0]  # motorised couriers are never asked


def test_the_round_sends_the_e_bike_when_the_promise_holds_and_the_motorbike_when_it_does_not(
    trained_city: TrainedCity,
) -> None:
    scorer = _scorer(trained_city.registry, trained_city)
    verdicts = _verdicts(scorer)
    holds = max(verdicts, key=lambda promised: verdicts[promised])
    fails = min(verdicts, key=lambda promised: verdicts[promised])
    assert verdicts[holds] >= GREEN_MIN_P_ON_TIME > verdicts[fails]
    order = DispatchOrder("o1", PICKUP, DROPOFF, ready_in_s=600.0)
    near = (PICKUP[0] + 0.002, PICKUP[1])
    couriers = [DispatchCourier("bike", near, Mode.E_BIKE), DispatchCourier("moto", near, Mode.MOTORBIKE)]

    def winner(promised_s: float) -> str:
        eta = ModelEta(scorer, TZ, {(PICKUP, DROPOFF): promised_s})
        plan = optimal_round([order], couriers, DispatchContext(depart_at=AT, eta=eta, country="NP"))
        (assignment,) = plan.assignments
        return assignment.courier_id

    assert winner(holds) == "bike"
    assert winner(fails) == "moto"
