"""A small simulated city with its offline feature tables: the data every ML test trains on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from features.build import LAKE_TABLES, scan_lake, write_feature_tables
from nearx.settings import Settings, load_settings
from pipelines.simulation.run import SimulationSpec, simulate_to_lake

SMALL_SPEC = SimulationSpec(("kathmandu",), date(2026, 1, 1), days=21, orders_per_day=500, seed=7)


@dataclass(frozen=True)
class SmallCity:
    settings: Settings
    lake: Path
    features_dir: Path

    def raw_paths(self) -> dict[str, list[Path]]:
        return {table: sorted((self.lake / "raw" / table).glob("**/*.parquet")) for table in LAKE_TABLES}


def build_small_city(root: Path, spec: SimulationSpec = SMALL_SPEC) -> SmallCity:
    settings = load_settings({"NEARX_HOME": str(root / "home")})
    lake = root / "lake"
    simulate_to_lake(lake, spec, progress=False)
    city = SmallCity(settings, lake, root / "features")
    write_feature_tables(scan_lake(city.raw_paths()), city.features_dir)
    return city
