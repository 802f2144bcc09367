"""Replay one simulated city day through dispatch rounds under a policy (greedy or optimal).

The city simulator (``pipelines.simulation``) supplies the day's demand and
fleet: every order that got a delivery (its merchant, drop-off, creation time and
kitchen preparation time; collusion fakes left out) and every courier (home,
mode, shift). The replay then forgets the simulator's own assignments and runs
a dispatch round every ``round_s`` seconds of simulated time: open orders
(created and not yet assigned, ``ready_in_s`` from their preparation time) meet
the couriers on shift who are free, and the policy decides. An assigned courier
is busy until its last drop-off and then waits there for the next round.

Travel in the replay follows the same routing provider the planner prices with
(haversine x Kathmandu's circuity, speeds by mode and local hour), so the
difference between policies comes from the decisions, not from prediction
error. Delivery time is what the customer sees: drop-off minus order creation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from nearx.dispatch import (
    DispatchContext,
    DispatchCourier,
    DispatchOrder,
    DispatchPlan,
    RoutingEta,
)
from nearx.routing import HaversineRouting, Mode
from pipelines.simulation.day import simulate_day
from pipelines.simulation.run import city_entities

Policy = Callable[[Sequence[DispatchOrder], Sequence[DispatchCourier], DispatchContext], DispatchPlan]
COUNTRY = {"kathmandu": "NP", "pune": "IN"}


@dataclass(frozen=True)
class CityDay:
    """The replay's input: orders sorted by creation, couriers with shifts, all times in local seconds."""

    city_id: str
    timezone: str
    midnight_utc: datetime
    order_ids: list[str]
    created_s: np.ndarray
    ready_s: np.ndarray
    pickup: np.ndarray
    dropoff: np.ndarray
    courier_ids: list[str]
    modes: list[Mode]
    home: np.ndarray
    shift_start_h: np.ndarray
    shift_hours: np.ndarray

    def fleet_share(self, step: int) -> CityDay:
        """The same day with every ``step``-th courier: the policies differ most when couriers are scarce."""
        return replace(
            self,
            courier_ids=self.courier_ids[::step],
            modes=self.modes[::step],
            home=self.home[::step],
            shift_start_h=self.shift_start_h[::step],
            shift_hours=self.shift_hours[::step],
        )


@dataclass(frozen=True)
class ReplayOutcome:
    delivery_min: np.ndarray
    """Minutes from order creation to drop-off, one per delivered order."""
    kg_co2e: float
    distance_km: float
    undelivered: int
    rounds: int


def city_day(city_id: str, day: date, orders_per_day: int, seed: int = 42) -> CityDay:
    """One simulated day of ``city_id`` with its fleet, as arrays for the replay."""
    entities = city_entities(city_id, seed, orders_per_day)
    city = entities.city
    tables = simulate_day(entities, seed, day, orders_per_day)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(minutes=city.utc_offset_minutes)
    orders = (
        tables.deliveries.select("order_id", "merchant_id", "created_at", "prep_s")
        .join(tables.orders.select("order_id", "dropoff_lat", "dropoff_lng", "fraud_type"), on="order_id")
        .filter(pl.col("fraud_type").is_null() | (pl.col("fraud_type") != "collusion"))
        .join(entities.merchants.select("merchant_id", "lat", "lng"), on="merchant_id")
        .with_columns(
            created_s=(pl.col("created_at").dt.epoch("us") / 1e6 - midnight.timestamp()),
        )
        .sort("created_s")
    )
    couriers = entities.couriers
    created = orders["created_s"].to_numpy()
    return CityDay(
        city_id=city.id,
        timezone=city.timezone,
        midnight_utc=midnight,
        order_ids=orders["order_id"].to_list(),
        created_s=created,
        ready_s=created + orders["prep_s"].to_numpy(),
        pickup=orders.select("lat", "lng").to_numpy(),
        dropoff=orders.select("dropoff_lat", "dropoff_lng").to_numpy(),
        courier_ids=couriers["courier_id"].to_list(),
        modes=[Mode(mode) for mode in couriers["mode"].to_list()],
        home=couriers.select("home_lat", "home_lng").to_numpy(),
        shift_start_h=couriers["shift_start_hour"].to_numpy(),
        shift_hours=couriers["shift_hours"].to_numpy(),
    )


def replay(day: CityDay, policy: Policy, round_s: float = 30.0, tail_h: float = 4.0) -> ReplayOutcome:
    """Run ``policy`` every ``round_s`` simulated seconds until all orders are delivered or the tail ends."""
    routing = RoutingEta(HaversineRouting(day.city_id, day.timezone))
    n_orders = len(day.order_ids)
    delivered_at = np.full(n_orders, np.nan)
    assigned = np.zeros(n_orders, dtype=bool)
    row_of = {order_id: i for i, order_id in enumerate(day.order_ids)}
    position = day.home.copy()
    free_at = np.zeros(len(day.courier_ids))
    kg = distance_m = 0.0
    rounds = 0
    end = 86_400.0 + tail_h * 3600
    t = float(np.ceil(day.created_s[0] / round_s) * round_s) if n_orders else end
    while t <= end and not assigned.all():
        open_rows = np.flatnonzero(~assigned & (day.created_s <= t))
        hour = int(t // 3600) % 24
        on_shift = ((hour - day.shift_start_h) % 24 < day.shift_hours) & (free_at <= t)
        free_rows = np.flatnonzero(on_shift)
        if open_rows.size and free_rows.size:
            rounds += 1
            orders = [
                DispatchOrder(
                    day.order_ids[i],
                    (float(day.pickup[i, 0]), float(day.pickup[i, 1])),
                    (float(day.dropoff[i, 0]), float(day.dropoff[i, 1])),
                    ready_in_s=max(0.0, float(day.ready_s[i] - t)),
                )
                for i in open_rows.tolist()
            ]
            couriers = [
                DispatchCourier(
                    str(c),
                    (float(position[c, 0]), float(position[c, 1])),
                    day.modes[c],
                    idle_s=max(0.0, t - float(free_at[c])),
                )
                for c in free_rows.tolist()
            ]
            context = DispatchContext(
                depart_at=day.midnight_utc + timedelta(seconds=t),
                eta=routing,
                country=COUNTRY[day.city_id],
            )
            for assignment in policy(orders, couriers, context).assignments:
                rows = [row_of[order_id] for order_id in assignment.order_ids]
                assigned[rows] = True
                delivered_at[rows] = t + np.array(assignment.dropoff_eta_s)
                courier = int(assignment.courier_id)
                free_at[courier] = t + max(assignment.dropoff_eta_s)
                position[courier] = day.dropoff[rows[-1]]  # order_ids are in drop-off order
                kg += assignment.kg_co2e
                distance_m += assignment.distance_m
        t += round_s
    done = ~np.isnan(delivered_at)
    return ReplayOutcome(
        delivery_min=(delivered_at[done] - day.created_s[done]) / 60.0,
        kg_co2e=kg,
        distance_km=distance_m / 1000.0,
        undelivered=int((~done).sum()),
        rounds=rounds,
    )
