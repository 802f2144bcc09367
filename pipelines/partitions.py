"""Partitions: simulated history by city and local day; entities by city."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pipelines.simulation.cities import CITIES

PARTITIONS_START = "2026-01-01"
cities = dg.StaticPartitionsDefinition(sorted(CITIES))
days = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)
city_day = dg.MultiPartitionsDefinition({"city": cities, "day": days})


def city_day_key(city_id: str, day: date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"city": city_id, "day": day.isoformat()})
