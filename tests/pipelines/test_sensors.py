"""The outbox sensor evaluated against a real PostgreSQL: a run when the outbox advances, none when not."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import dagster as dg
import psycopg

from nearx.settings import load_settings
from pipelines.definitions import build_definitions
from pipelines.extract import EXTRACT_TABLES, extract_table
from pipelines.resources import LakeResource, PostgresResource
from pipelines.sensors import SENSOR_NAME, build_outbox_sensor

OUTBOX = next(table for table in EXTRACT_TABLES if table.name == "outbox")


def _append_event(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, payload) "
            "VALUES (%s, 'user.created', 'user', %s, %s) RETURNING position",
            (uuid.uuid4(), uuid.uuid4(), json.dumps({})),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_sensor_requests_one_run_per_outbox_advance(db_url: str, tmp_path: Path) -> None:
    sensor = build_outbox_sensor(live_database=True)
    resources = {"lake": LakeResource(root=str(tmp_path)), "postgres": PostgresResource(url=db_url)}

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            result = sensor(context)
        assert isinstance(result, dg.SensorResult | dg.SkipReason)
        return result

    assert isinstance(tick(None), dg.SkipReason)  # an empty outbox

    first = _append_event(db_url)
    requested = tick(None)
    assert isinstance(requested, dg.SensorResult)
    assert [r.run_key for r in requested.run_requests or []] == [f"outbox-{first}"]
    assert requested.cursor == str(first)

    skipped = tick(requested.cursor)  # the next tick, before the extract ran: asked already
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == f"outbox at {first}: nothing new to extract"

    with psycopg.connect(db_url) as conn:
        extract_table(conn, tmp_path, OUTBOX)
    assert isinstance(tick(None), dg.SkipReason)  # extracted, even with the sensor's cursor lost

    second = _append_event(db_url)
    again = tick(requested.cursor)
    assert isinstance(again, dg.SensorResult)
    assert [r.run_key for r in again.run_requests or []] == [f"outbox-{second}"]
    assert again.cursor == str(second)


def test_sensor_runs_by_default_only_with_a_live_database(tmp_path: Path) -> None:
    def status(values: dict[str, str]) -> dg.DefaultSensorStatus:
        settings = load_settings({"NEARX_HOME": str(tmp_path), **values})
        return build_definitions(settings).resolve_sensor_def(SENSOR_NAME).default_status

    assert status({}) == dg.DefaultSensorStatus.STOPPED
    live = {"NEARX_DATABASE_URL": "postgresql://nearx@db.internal:5432/nearx"}
    assert status(live) == dg.DefaultSensorStatus.RUNNING
