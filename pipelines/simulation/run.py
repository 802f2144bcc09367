"""Simulate cities over a range of days into the lake: the function the CLI, bench and assets call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from tqdm import tqdm

from pipelines.simulation.cities import get_city
from pipelines.simulation.day import simulate_day
from pipelines.simulation.entities import Entities, Scale, generate_entities
from pipelines.simulation.lake import day_path, entity_path, write_atomic

ENTITIES_AS_OF = date(2026, 1, 1)
"""Sign-up and opening dates are drawn before this date; a constant keeps runs reproducible."""


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    """What to simulate. ``orders_per_day`` is the expected demand of an average day per city."""

    cities: tuple[str, ...]
    start: date
    days: int
    orders_per_day: int
    seed: int = 42

    @classmethod
    def for_total_orders(
        cls, cities: tuple[str, ...], start: date, days: int, orders: int, seed: int = 42
    ) -> SimulationSpec:
        """Spread about ``orders`` orders over ``cities`` x ``days`` (demand varies by day)."""
        return cls(cities, start, days, max(1, round(orders / (len(cities) * days))), seed)

    @property
    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]


@dataclass
class SimulationSummary:
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


def city_entities(city_id: str, spec_seed: int, orders_per_day: int) -> Entities:
    return generate_entities(
        get_city(city_id), spec_seed, Scale.for_orders_per_day(orders_per_day), ENTITIES_AS_OF
    )


def write_entities(lake: Path, entities: Entities) -> dict[str, int]:
    frames = {
        "merchants": entities.merchants,
        "customers": entities.customers,
        "couriers": entities.couriers,
        "providers": entities.providers,
    }
    for table, frame in frames.items():
        write_atomic(frame, entity_path(lake, table, entities.city.id))
    return {table: frame.height for table, frame in frames.items()}


def write_day(lake: Path, entities: Entities, seed: int, day: date, orders_per_day: int) -> dict[str, int]:
    tables = simulate_day(entities, seed, day, orders_per_day).as_dict()
    for table, frame in tables.items():
        write_atomic(frame, day_path(lake, table, entities.city.id, day))
    return {table: frame.height for table, frame in tables.items()}


def simulate_to_lake(lake: Path, spec: SimulationSpec, progress: bool = True) -> SimulationSummary:
    """Write every (city, day) partition of ``spec`` under ``lake/raw`` with a progress bar."""
    summary = SimulationSummary()
    with tqdm(
        total=len(spec.cities) * spec.days, desc="simulating", unit="city-day", disable=not progress
    ) as bar:
        for city_id in spec.cities:
            entities = city_entities(city_id, spec.seed, spec.orders_per_day)
            for table, count in write_entities(lake, entities).items():
                summary.add(table, count)
            for day in spec.day_list:
                for table, count in write_day(lake, entities, spec.seed, day, spec.orders_per_day).items():
                    summary.add(table, count)
                bar.update(1)
                bar.set_postfix(orders=f"{summary.rows.get('orders', 0):,}")
    return summary
