"""The Dagster definitions: assets by stage, their jobs, schedule and sensor, and resources.

``dagster dev -m pipelines.definitions`` (or ``nearx ui``) loads ``defs``; resources
come from ``NEARX_*`` settings at load time, never at import of the asset modules.
"""

from __future__ import annotations

import dagster as dg

from nearx.settings import Settings, get_settings
from pipelines.assets.extract import extract_assets
from pipelines.assets.live import live_tables
from pipelines.assets.marts import mart_assets
from pipelines.assets.ml import ml_assets, ml_job, ml_resources
from pipelines.assets.simulation import simulated_day, simulated_entities
from pipelines.assets.staging import staging_assets
from pipelines.jobs import ALL_JOBS
from pipelines.resources import build_resources
from pipelines.schedules import daily_schedule
from pipelines.sensors import build_outbox_sensor


def build_definitions(settings: Settings, **resource_options: object) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            simulated_entities,
            simulated_day,
            *staging_assets,
            *mart_assets,
            *extract_assets,
            live_tables,
            *ml_assets,
        ],
        jobs=[*ALL_JOBS, ml_job],
        schedules=[daily_schedule],
        sensors=[build_outbox_sensor(live_database=settings.database_url is not None)],
        resources={
            **build_resources(settings, **resource_options),  # type: ignore[arg-type]
            **ml_resources(settings),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(get_settings())
