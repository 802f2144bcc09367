"""The default routing provider and the emission factors: data-driven, with the physics right."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from nearx.emissions import (
    default_factors,
    delivery_emission,
    factors_from_mapping,
    leg_emission,
    legs_kg_co2e,
)
from nearx.geo import haversine_m
from nearx.routing import HaversineRouting, Mode, default_profile, pairwise_haversine_m, profile_from_mapping

THAMEL = (27.7154, 85.3123)
PATAN = (27.6727, 85.3250)
NOON_KTM = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)  # 12:00 in Kathmandu (UTC+05:45)
PEAK_KTM = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)  # 18:00 in Kathmandu
NIGHT_KTM = datetime(2026, 3, 2, 21, 15, tzinfo=UTC)  # 03:00 in Kathmandu


def test_leg_is_haversine_times_city_circuity_at_the_mode_speed() -> None:
    routing = HaversineRouting("kathmandu", "Asia/Kathmandu")
    leg = routing.leg(THAMEL, PATAN, Mode.FOOT, NOON_KTM)
    straight = haversine_m(*THAMEL, *PATAN)
    assert leg.distance_m == pytest.approx(straight * 1.50)
    assert leg.duration_s == pytest.approx(leg.distance_m / (4.8 / 3.6))


def test_local_hour_drives_congestion_for_motor_modes_only() -> None:
    routing = HaversineRouting("kathmandu", "Asia/Kathmandu")
    assert routing.local_hour(PEAK_KTM) == 18
    night = routing.leg(THAMEL, PATAN, Mode.CAR, NIGHT_KTM).duration_s
    peak = routing.leg(THAMEL, PATAN, Mode.CAR, PEAK_KTM).duration_s
    assert peak > 1.5 * night
    assert routing.leg(THAMEL, PATAN, Mode.FOOT, PEAK_KTM) == routing.leg(THAMEL, PATAN, Mode.FOOT, NIGHT_KTM)
    # in the evening peak a motorbike beats a car through the same streets
    assert routing.leg(THAMEL, PATAN, Mode.MOTORBIKE, PEAK_KTM).duration_s < peak


def test_unknown_city_uses_the_default_circuity() -> None:
    leg = HaversineRouting("lalitpur", "Asia/Kathmandu").leg(THAMEL, PATAN, Mode.FOOT, NOON_KTM)
    assert leg.distance_m == pytest.approx(haversine_m(*THAMEL, *PATAN) * 1.40)


def test_matrix_matches_legs() -> None:
    routing = HaversineRouting("pune", "Asia/Kolkata")
    origins = np.array([[18.52, 73.85], [18.50, 73.90]])
    destinations = np.array([[18.53, 73.84], [18.45, 73.80], [18.60, 73.95]])
    distance, duration = routing.matrix(origins, destinations, Mode.EV_SCOOTER, NOON_KTM)
    assert distance.shape == duration.shape == (2, 3)
    for i, origin in enumerate(origins):
        for j, destination in enumerate(destinations):
            leg = routing.leg(tuple(origin), tuple(destination), Mode.EV_SCOOTER, NOON_KTM)
            assert distance[i, j] == pytest.approx(leg.distance_m)
            assert duration[i, j] == pytest.approx(leg.duration_s)
    assert pairwise_haversine_m(origins[:1], origins[:1])[0, 0] == 0.0


def test_profile_data_is_validated() -> None:
    raw: dict[str, Any] = {
        "circuity": {"default": 1.4},
        "congestion": {"hourly": [0.1] * 23},
        "mode": {
            mode.value: {"free_flow_kmh": 5, "congestion_sensitivity": 0, "max_plausible_kmh": 9}
            for mode in Mode
        },
    }
    with pytest.raises(ValueError, match="24 values"):
        profile_from_mapping(raw)
    raw["congestion"] = {"hourly": [0.1] * 24}
    raw["mode"].pop("car")
    with pytest.raises(ValueError, match="every mode"):
        profile_from_mapping(raw)
    assert default_profile().max_plausible_mps(Mode.FOOT) < default_profile().max_plausible_mps(Mode.CAR)


def test_ev_emissions_follow_the_country_grid() -> None:
    nepal = leg_emission(10_000, Mode.EV_SCOOTER, "NP")
    india = leg_emission(10_000, Mode.EV_SCOOTER, "IN")
    assert nepal.kg_co2e == pytest.approx(10 * 0.030 * 0.024)
    assert india.kg_co2e == pytest.approx(10 * 0.030 * 0.716)
    assert india.kg_co2e > 25 * nepal.kg_co2e
    assert nepal.baseline_kg_co2e == india.baseline_kg_co2e == pytest.approx(10 * 0.16490)
    with pytest.raises(KeyError, match="grid"):
        leg_emission(1_000, Mode.E_BIKE, "FR")


def test_savings_against_a_petrol_car_for_the_same_legs() -> None:
    walk = delivery_emission([1_200, 800], Mode.FOOT, "NP")
    assert walk.kg_co2e == 0.0
    assert walk.saving_kg_co2e == pytest.approx(2 * 0.16490)
    motorbike = delivery_emission([3_000, 2_000], Mode.MOTORBIKE, "IN")
    assert motorbike.kg_co2e == pytest.approx(5 * 0.08277)
    assert 0 < motorbike.saving_kg_co2e < walk.saving_kg_co2e * 2.5
    car = delivery_emission([3_000], Mode.CAR, "IN")
    assert car.saving_kg_co2e == pytest.approx(0.0)
    assert default_factors().source.startswith("UK Government GHG Conversion Factors")
    with pytest.raises(ValueError, match="negative"):
        leg_emission(-1, Mode.CAR, "NP")


def test_many_legs_at_once_price_each_leg_as_one_leg_does() -> None:
    distances = np.array([0.0, 850.0, 3_210.5, 12_000.0])
    for mode, country in ((Mode.E_BIKE, "NP"), (Mode.MOTORBIKE, "IN")):
        each = [leg_emission(d, mode, country).kg_co2e for d in distances]
        np.testing.assert_array_equal(legs_kg_co2e(distances, mode, country), each)
    with pytest.raises(ValueError, match="negative"):
        legs_kg_co2e(np.array([100.0, -1.0]), Mode.CAR, "NP")


def test_factor_data_must_cover_every_mode_once() -> None:
    raw: dict[str, Any] = {
        "source": "x",
        "baseline_mode": "petrol_car",
        "combustion": {"petrol_car": {"kg_co2e_per_km": 0.2}, "car": {"kg_co2e_per_km": 0.2}},
        "electric": {"e_bike": {"kwh_per_km": 0.01}, "ev_scooter": {"kwh_per_km": 0.03}},
        "grid_kg_co2e_per_kwh": {"NP": 0.02},
        "human": {"foot": 0.0, "bicycle": 0.0},
    }
    with pytest.raises(ValueError, match="every mode"):
        factors_from_mapping(raw)
    raw["combustion"]["motorbike"] = {"kg_co2e_per_km": -0.1}
    with pytest.raises(ValueError, match="negative"):
        factors_from_mapping(raw)
