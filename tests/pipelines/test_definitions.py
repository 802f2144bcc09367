"""The Dagster definitions load, and every mart carries its checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nearx.settings import Settings, load_settings
from pipelines.assets.ml import ml_resources
from pipelines.checks import check_names
from pipelines.definitions import build_definitions
from pipelines.extract import EXTRACT_TABLES
from pipelines.live import LIVE_TABLES, SOURCES
from pipelines.marts import MARTS


def test_definitions_load_with_every_stage(settings: Settings) -> None:
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"lake/raw/orders", "lake/staging/orders", "marts/daily_city", "lake/postgres/outbox"} <= keys
    assert {f"marts/{mart.name}" for mart in MARTS} <= keys
    assert {f"lake/postgres/{table.name}" for table in EXTRACT_TABLES} <= keys
    assert {f"lake/live/{table}" for table in LIVE_TABLES} <= keys
    assert set(SOURCES) <= {table.name for table in EXTRACT_TABLES}  # the mapping reads only extracted tables
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


def test_feature_store_resource_follows_the_online_store_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "NEARX_HOME": str(tmp_path),
            "NEARX_FEAST_ONLINE": "postgres",
            "NEARX_DATABASE_URL": "postgresql://nearx@db.internal:5432/platform",
        }
    )
    resource = ml_resources(settings)["feature_store"]
    online = resource.store(tmp_path / "lake").config.online_store
    assert (online.type, online.host, online.database) == ("postgres", "db.internal", "platform")
    assert resource.settings().feast_online == "postgres"
