"""Emission factors per courier mode, as data with their source.

Tailpipe modes use a fixed factor per km; electric modes use energy per km times
the city's grid intensity (``City.grid_kg_co2e_per_kwh``), so an e-scooter in
hydro-powered Kathmandu emits far less than the same scooter in Pune.
"Saved" CO2e is measured against the motorbike, the default delivery vehicle
in both cities.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.simulation.cities import COURIER_MODES, City


@dataclass(frozen=True, slots=True)
class ModeFactor:
    mode: str
    kg_co2e_per_km: float
    """Direct (tailpipe) emissions; 0 for electric and human-powered modes."""
    kwh_per_km: float
    """Electricity drawn per km, multiplied by the grid intensity."""
    speed_kmh: float
    """Free-flow speed the simulator uses for this mode."""
    congestion_exposure: float
    """0 = ignores traffic (walks past it), 1 = fully stuck in it."""
    source: str


MODE_FACTORS: dict[str, ModeFactor] = {
    factor.mode: factor
    for factor in (
        ModeFactor("foot", 0.0, 0.0, 4.8, 0.0, "No operational emissions"),
        ModeFactor("bicycle", 0.0, 0.0, 13.0, 0.2, "No operational emissions"),
        ModeFactor("e_bike", 0.0, 0.011, 18.0, 0.3, "~11 Wh/km typical pedelec consumption (assumption)"),
        ModeFactor(
            "ev_scooter", 0.0, 0.035, 24.0, 0.7, "~35 Wh/km typical 2-wheeler EV consumption (assumption)"
        ),
        ModeFactor(
            "motorbike",
            0.1135,
            0.0,
            28.0,
            0.8,
            "UK DESNZ GHG conversion factors 2023, motorbike average (0.1135 kg CO2e/km)",
        ),
        ModeFactor(
            "car",
            0.1705,
            0.0,
            26.0,
            1.0,
            "UK DESNZ GHG conversion factors 2023, average petrol car (0.1705 kg CO2e/km)",
        ),
    )
}

BASELINE_MODE = "motorbike"


def kg_per_km(city: City) -> tuple[float, ...]:
    """Effective kg CO2e per km for each mode in :data:`COURIER_MODES` order, in ``city``."""
    return tuple(
        MODE_FACTORS[mode].kg_co2e_per_km + MODE_FACTORS[mode].kwh_per_km * city.grid_kg_co2e_per_kwh
        for mode in COURIER_MODES
    )
