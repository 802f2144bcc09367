"""CO2e per delivery leg by mode, and the saving against a petrol car doing the same legs.

Completed deliveries, the sustainability mart, courier incentives and the
dispatch solver's emission penalty all use these factors, so they live once,
as data with their sources (``nearx/data/emission_factors.toml``). Electric modes
are energy per km times the grid intensity of the country they charge in: the
same e-scooter is nearly clean on Nepal's hydro grid and not on India's coal-heavy one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from nearx.routing import Mode


@dataclass(frozen=True, slots=True)
class EmissionFactors:
    """kg CO2e per vehicle-km, by mode and (for electric modes) by country."""

    source: str
    combustion_kg_per_km: dict[str, float]
    electric_kwh_per_km: dict[Mode, float]
    grid_kg_per_kwh: dict[str, float]
    human_modes: frozenset[Mode]
    baseline: str

    def kg_per_km(self, mode: Mode, country: str) -> float:
        """Operational kg CO2e per km for ``mode`` charged/fuelled in ``country`` (ISO 3166-1 alpha-2)."""
        if mode in self.human_modes:
            return 0.0
        if mode in self.electric_kwh_per_km:
            if country not in self.grid_kg_per_kwh:
                raise KeyError(f"no grid intensity for country {country!r}")
            return self.electric_kwh_per_km[mode] * self.grid_kg_per_kwh[country]
        return self.combustion_kg_per_km[mode.value]

    def baseline_kg_per_km(self) -> float:
        return self.combustion_kg_per_km[self.baseline]


@dataclass(frozen=True, slots=True)
class LegEmission:
    distance_m: float
    kg_co2e: float
    baseline_kg_co2e: float

    @property
    def saving_kg_co2e(self) -> float:
        """Avoided against the petrol-car baseline for the same distance (negative if worse)."""
        return self.baseline_kg_co2e - self.kg_co2e


@cache
def default_factors() -> EmissionFactors:
    """The factors shipped in ``nearx/data/emission_factors.toml`` (read once)."""
    raw = tomllib.loads(resources.files("nearx").joinpath("data/emission_factors.toml").read_text("utf-8"))
    return factors_from_mapping(raw)


def factors_from_mapping(raw: dict[str, Any]) -> EmissionFactors:
    """Validate the TOML's shape: every mode covered exactly once, every factor non-negative."""
    combustion = {name: float(entry["kg_co2e_per_km"]) for name, entry in raw["combustion"].items()}
    electric = {Mode(name): float(entry["kwh_per_km"]) for name, entry in raw["electric"].items()}
    human = frozenset(Mode(name) for name in raw["human"])
    combustion_modes = {Mode(name) for name in combustion if name in set(Mode)}
    covered = [*combustion_modes, *electric, *human]
    if sorted(covered) != sorted(Mode):
        raise ValueError("emission factors must cover every mode exactly once")
    values = [*combustion.values(), *electric.values(), *raw["grid_kg_co2e_per_kwh"].values()]
    if any(float(value) < 0 for value in values):
        raise ValueError("emission factors cannot be negative")
    if raw["baseline_mode"] not in combustion:
        raise ValueError("the baseline must be a combustion factor")
    return EmissionFactors(
        source=str(raw["source"]),
        combustion_kg_per_km=combustion,
        electric_kwh_per_km=electric,
        grid_kg_per_kwh={country: float(value) for country, value in raw["grid_kg_co2e_per_kwh"].items()},
        human_modes=human,
        baseline=str(raw["baseline_mode"]),
    )


def leg_emission(
    distance_m: float, mode: Mode, country: str, factors: EmissionFactors | None = None
) -> LegEmission:
    """CO2e of one leg and of a petrol car driving the same distance."""
    if distance_m < 0:
        raise ValueError("distance cannot be negative")
    table = factors or default_factors()
    km = distance_m / 1000.0
    return LegEmission(
        distance_m=distance_m,
        kg_co2e=km * table.kg_per_km(mode, country),
        baseline_kg_co2e=km * table.baseline_kg_per_km(),
    )


def legs_kg_co2e(
    distance_m: npt.NDArray[np.float64], mode: Mode, country: str, factors: EmissionFactors | None = None
) -> npt.NDArray[np.float64]:
    """:func:`leg_emission`'s ``kg_co2e`` for many legs of one mode at once (a match's top results)."""
    if (distance_m < 0).any():
        raise ValueError("distance cannot be negative")
    return (distance_m / 1000.0) * (factors or default_factors()).kg_per_km(mode, country)


def delivery_emission(
    leg_distances_m: list[float], mode: Mode, country: str, factors: EmissionFactors | None = None
) -> LegEmission:
    """Sum over a delivery's legs (to pickup, pickup to drop-off, ...), same mode throughout."""
    legs = [leg_emission(distance, mode, country, factors) for distance in leg_distances_m]
    return LegEmission(
        distance_m=sum(leg.distance_m for leg in legs),
        kg_co2e=sum(leg.kg_co2e for leg in legs),
        baseline_kg_co2e=sum(leg.baseline_kg_co2e for leg in legs),
    )
