"""The Dagster definitions load, and every mart carries its checks."""

from __future__ import annotations

import dagster as dg

from nearx.settings import Settings
from pipelines.checks import check_names
from pipelines.definitions import build_definitions
from pipelines.extract import EXTRACT_TABLES
from pipelines.marts import MARTS


def test_definitions_load_with_every_stage(settings: Settings) -> None:
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"lake/raw/orders", "lake/staging/orders", "marts/daily_city", "lake/postgres/outbox"} <= keys
    assert {f"marts/{mart.name}" for mart in MARTS} <= keys
    assert {f"lake/postgres/{table.name}" for table in EXTRACT_TABLES} <= keys
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "simulate_entities",
        "simulate_day",
        "refresh",
    }
    assert defs.resolve_schedule_def("daily_refresh").cron_schedule == "0 2 * * *"
    assert defs.resolve_sensor_def("outbox_sensor").job_name == "extract"


def test_every_mart_has_blocking_key_checks(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    for mart in MARTS:
        checks = {key.name for key in graph.get_check_keys_for_assets({dg.AssetKey(["marts", mart.name])})}
        assert checks == {name for name, _ in check_names(mart)}
        assert ("keys_unique_not_null", True) in check_names(mart)
