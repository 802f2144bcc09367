"""A sensor that launches the extracts when the outbox has advanced past the stored cursor."""

import dagster as dg
import psycopg

from pipelines.extract import load_cursors, outbox_position
from pipelines.jobs import extract_job
from pipelines.resources import LakeResource, PostgresResource


def outbox_advanced(position: int, cursors: dict[str, list[str]]) -> bool:
    """True when the outbox holds events the last extract did not read."""
    extracted = int(cursors["outbox"][0]) if cursors.get("outbox") else 0
    return position > extracted


@dg.sensor(job=extract_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def outbox_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, postgres: PostgresResource
) -> dg.SensorResult | dg.SkipReason:
    with postgres.resolved_url() as url, psycopg.connect(url) as conn:
        position = outbox_position(conn)
    if not outbox_advanced(position, load_cursors(lake.path)):
        return dg.SkipReason(f"outbox at {position}: nothing new to extract")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"outbox-{position}")])
