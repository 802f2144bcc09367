from __future__ import annotations

import math

import h3
import pytest

from nearx.geo import InvalidCoordinates, Point, h3_cells, haversine_m
from nearx.money import CurrencyMismatch, Money, UnknownCurrency


def test_money_adds_within_one_currency_only() -> None:
    assert Money(1_050, "NPR") + Money(50, "NPR") == Money(1_100, "NPR")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "NPR") + Money(1, "INR")
    with pytest.raises(UnknownCurrency):
        Money(1, "XYZ")


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [(10_000, 1_500, 1_500), (999, 1_250, 125), (1, 5_000, 1), (0, 2_000, 0)],
)
def test_share_rounds_half_up_to_the_minor_unit(amount: int, bp: int, expected: int) -> None:
    assert Money(amount, "INR").share(bp).amount_minor == expected


@pytest.mark.parametrize(
    ("money", "text"), [(Money(1_250, "NPR"), "NPR 12.50"), (Money(-5, "USD"), "USD -0.05")]
)
def test_format_for_display(money: Money, text: str) -> None:
    assert money.format() == text


def test_haversine_matches_a_known_distance() -> None:
    # Kathmandu Durbar Square to Patan Durbar Square is about 4.1 km as the crow flies.
    distance = haversine_m(27.7045, 85.3074, 27.6727, 85.3253)
    assert 3_900 < distance < 4_100
    assert haversine_m(10.0, 20.0, 10.0, 20.0) == 0.0


@pytest.mark.parametrize(("lat", "lng"), [(91, 0), (-90.5, 0), (0, 180.01), (math.nan, 0), (0, math.inf)])
def test_invalid_coordinates_are_refused(lat: float, lng: float) -> None:
    with pytest.raises(InvalidCoordinates):
        Point(lat, lng)


def test_h3_cells_at_each_resolution() -> None:
    cells = h3_cells(27.7172, 85.3240, (7, 9))
    assert set(cells) == {7, 9}
    assert h3.get_resolution(cells[9]) == 9
    assert h3.cell_to_parent(cells[9], 7) == cells[7]
