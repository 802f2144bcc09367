"""A sensor that launches the extracts when the outbox has advanced past what was extracted.

Its cursor is the outbox position it last asked an extract for, so a position is
requested once: while that run is queued or if it fails, later ticks skip until a new
event arrives (the daily schedule re-extracts regardless). It starts RUNNING when the
platform has a real database (``NEARX_DATABASE_URL``), so a deployed Dagster daemon
follows live traffic without a click; with the embedded development server it starts
STOPPED, because each tick would have to boot that server in the daemon.
"""

import dagster as dg
import psycopg

from pipelines.extract import load_cursors, outbox_position
from pipelines.jobs import extract_job
from pipelines.resources import LakeResource, PostgresResource

SENSOR_NAME = "outbox_sensor"


def outbox_advanced(position: int, cursors: dict[str, list[str]], requested: int = 0) -> bool:
    """True when the outbox holds events neither extracted nor already requested."""
    extracted = int(cursors["outbox"][0]) if cursors.get("outbox") else 0
    return position > max(extracted, requested)


def build_outbox_sensor(*, live_database: bool) -> dg.SensorDefinition:
    """The outbox sensor; on by default when ``live_database`` (a configured PostgreSQL URL)."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=extract_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING if live_database else dg.DefaultSensorStatus.STOPPED,
    )
    def _outbox_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        with postgres.resolved_url() as url, psycopg.connect(url) as conn:
            position = outbox_position(conn)
        requested = int(context.cursor) if context.cursor else 0
        if not outbox_advanced(position, load_cursors(lake.path), requested):
            return dg.SkipReason(f"outbox at {position}: nothing new to extract")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"outbox-{position}")], cursor=str(position)
        )

    return _outbox_sensor
