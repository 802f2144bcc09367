"""The simulator: reproducible, internally consistent, with the behaviours models rely on."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.simulation.cities import CITIES, COURIER_MODES, KATHMANDU, PUNE
from pipelines.simulation.day import DAY_TABLES, DayTables, day_conditions, simulate_day
from pipelines.simulation.emissions import kg_per_km
from pipelines.simulation.entities import Entities, Scale, generate_entities
from pipelines.simulation.run import ENTITIES_AS_OF

DAY = date(2026, 3, 6)


@pytest.fixture(scope="module")
def entities() -> Entities:
    return generate_entities(KATHMANDU, 7, Scale.for_orders_per_day(3000), ENTITIES_AS_OF)


@pytest.fixture(scope="module")
def day(entities: Entities) -> DayTables:
    return simulate_day(entities, 7, DAY, 3000)


def test_same_seed_same_output_and_other_seed_differs(entities: Entities, day: DayTables) -> None:
    again = generate_entities(KATHMANDU, 7, Scale.for_orders_per_day(3000), ENTITIES_AS_OF)
    assert_frame_equal(again.customers, entities.customers)
    repeat = simulate_day(again, 7, DAY, 3000)
    for table in DAY_TABLES:
        assert_frame_equal(getattr(repeat, table), getattr(day, table))
    other = simulate_day(
        generate_entities(KATHMANDU, 8, Scale.for_orders_per_day(3000), ENTITIES_AS_OF), 8, DAY, 3000
    )
    assert not other.orders.equals(day.orders)


def test_keys_are_unique_and_references_resolve(entities: Entities, day: DayTables) -> None:
    orders = day.orders
    assert orders["order_id"].is_unique().all()
    assert orders["customer_id"].is_in(entities.customers["customer_id"].implode()).all()
    assert orders["merchant_id"].is_in(entities.merchants["merchant_id"].implode()).all()
    assert day.order_items["order_id"].is_in(orders["order_id"].implode()).all()
    assert day.deliveries["order_id"].is_in(orders["order_id"].implode()).all()
    assert day.refunds["payment_id"].is_in(day.payments["payment_id"].implode()).all()
    assert (
        orders["total_minor"]
        == orders["subtotal_minor"] + orders["delivery_fee_minor"] - orders["discount_minor"]
    ).all()
    items = day.order_items.group_by("order_id").agg(pl.col("line_total_minor").sum())
    joined = orders.join(items, on="order_id")
    assert (joined["subtotal_minor"] == joined["line_total_minor"]).all()


def test_fraud_is_labelled_rare_and_covers_every_pattern(day: DayTables) -> None:
    rate = day.orders["is_fraud"].mean()
    assert rate is not None
    assert 0 < float(rate) < 0.02
    kinds = set(day.orders["fraud_type"].drop_nulls())
    assert kinds == {"stolen_card", "account_takeover", "promo_abuse", "collusion", "refund_abuse"}
    stolen = day.orders.filter(pl.col("fraud_type") == "stolen_card")
    assert stolen["device_id"].n_unique() < stolen.height  # bursts: many orders per device
    abuse = day.orders.filter(pl.col("fraud_type") == "refund_abuse")["order_id"]
    assert (day.refunds.filter(pl.col("order_id").is_in(abuse.implode()))["reason"] == "item_missing").all()


def test_search_sessions_are_ranking_ground_truth(day: DayTables) -> None:
    impressions = day.search_impressions
    per_session = impressions.group_by("session_id").agg(pl.col("ordered").sum(), pl.len())
    assert per_session["len"].max() == 10
    assert per_session["ordered"].max() == 1
    assert impressions.filter(pl.col("ordered") & ~pl.col("clicked")).height == 0
    converted = day.search_sessions.filter(pl.col("converted"))
    assert converted["order_id"].is_in(day.orders["order_id"].implode()).all()
    # The hidden utility prefers favourites and nearer merchants.
    by_fav = impressions.group_by("is_favourite").agg(pl.col("ordered").mean()).sort("is_favourite")
    assert by_fav["ordered"][1] > by_fav["ordered"][0]


def test_co2e_follows_the_mode(day: DayTables) -> None:
    done = day.deliveries.filter(pl.col("status") == "delivered")
    zero = done.filter(pl.col("mode").is_in(["foot", "bicycle"]))
    assert zero.height > 0
    assert (zero["co2e_kg"] == 0).all()
    motorbike = done.filter(pl.col("mode") == "motorbike")
    assert (motorbike["co2e_saved_kg"].abs() < 1e-9).all()
    assert (done["on_time"] == (done["duration_s"] <= done["promised_s"])).all()


@pytest.mark.parametrize(("mode", "cleaner_in"), [("e_bike", "kathmandu"), ("ev_scooter", "kathmandu")])
def test_grid_intensity_makes_electric_modes_cleaner_on_hydro(mode: str, cleaner_in: str) -> None:
    index = COURIER_MODES.index(mode)
    assert kg_per_km(CITIES[cleaner_in])[index] < kg_per_km(PUNE)[index]


def test_rain_lifts_demand_and_slows_travel(entities: Entities) -> None:
    days = [date(2026, 3, 1) + timedelta(days=offset) for offset in range(40)]
    rainy = [d for d in days if day_conditions(KATHMANDU, 7, d).rain]
    dry = [
        d
        for d in days
        if not day_conditions(KATHMANDU, 7, d).rain and d.isoweekday() == rainy[0].isoweekday()
    ]
    assert rainy
    assert dry
    wet = simulate_day(entities, 7, rainy[0], 3000).deliveries
    fine = simulate_day(entities, 7, dry[0], 3000).deliveries
    assert wet.height > fine.height * 0.9  # demand up (a promotion may lift the dry day too)
    speed = pl.col("distance_m") / pl.col("travel_s")
    assert wet.select(speed.median()).item() < fine.select(speed.median()).item()


@pytest.mark.parametrize(
    ("orders_per_day", "merchants", "customers"),
    [(10, 25, 300), (3000, 300, 12000), (10_000_000, 4000, 200_000)],
)
def test_scale_is_clipped_to_sane_sizes(orders_per_day: int, merchants: int, customers: int) -> None:
    scale = Scale.for_orders_per_day(orders_per_day)
    assert (scale.merchants, scale.customers) == (merchants, customers)
