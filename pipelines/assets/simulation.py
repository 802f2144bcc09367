"""Source assets: the simulator's entity tables per city, and its day tables per (city, day)."""

import warnings
from collections.abc import Iterator
from datetime import date

import dagster as dg

from pipelines.partitions import cities, city_day
from pipelines.resources import LakeResource, SimulationResource
from pipelines.simulation.day import DAY_TABLES
from pipelines.simulation.lake import ENTITY_TABLES
from pipelines.simulation.run import city_entities, write_day, write_entities


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", "raw", table])


with warnings.catch_warnings():  # beta since 1.6 and the documented way to map city x day onto city
    warnings.simplefilter("ignore", dg.BetaWarning)
    BY_CITY = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="city")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(raw_key(table), kinds={"parquet", "polars"}, description=f"Simulated {table}, per city.")
        for table in ENTITY_TABLES
    ],
    partitions_def=cities,
    group_name="simulation",
)
def simulated_entities(
    context: dg.AssetExecutionContext, lake: LakeResource, simulation: SimulationResource
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]  # dagster reads this annotation
    """Merchants, customers, couriers and providers of one city (seeded, reproducible)."""
    entities = city_entities(context.partition_key, simulation.seed, simulation.orders_per_day)
    for table, rows in write_entities(lake.path, entities).items():
        yield dg.MaterializeResult(asset_key=raw_key(table), metadata={"dagster/row_count": rows})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            raw_key(table),
            kinds={"parquet", "polars"},
            description=f"Simulated {table}, per city and local day.",
            deps=[
                dg.AssetDep(
                    raw_key(entity),
                    partition_mapping=BY_CITY,
                )
                for entity in ENTITY_TABLES
            ],
        )
        for table in DAY_TABLES
    ],
    partitions_def=city_day,
    group_name="simulation",
)
def simulated_day(
    context: dg.AssetExecutionContext, lake: LakeResource, simulation: SimulationResource
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]  # dagster reads this annotation
    """One city-day of sessions, orders, deliveries, payments, refunds and reviews."""
    key = context.partition_key
    assert isinstance(key, dg.MultiPartitionKey)
    city_id, day = key.keys_by_dimension["city"], date.fromisoformat(key.keys_by_dimension["day"])
    entities = city_entities(city_id, simulation.seed, simulation.orders_per_day)
    for table, rows in write_day(
        lake.path, entities, simulation.seed, day, simulation.orders_per_day
    ).items():
        yield dg.MaterializeResult(asset_key=raw_key(table), metadata={"dagster/row_count": rows})
