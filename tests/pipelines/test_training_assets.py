"""End to end on a small simulated city: staged lake -> features -> training -> registry -> online store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from nearx.settings import load_settings
from pipelines.assets.features import ML_TABLES
from pipelines.assets.ml import ml_assets, ml_resources
from pipelines.assets.staging import staging_assets, staging_key
from pipelines.definitions import build_definitions
from pipelines.resources import build_resources, lake_path
from pipelines.simulation.run import SimulationSpec, simulate_to_lake

MODELS = ("nearx-eta", "nearx-fraud", "nearx-ranker", "nearx-green")


@pytest.mark.slow
def test_ml_graph_registers_champions_and_serves_online_features(tmp_path: Path) -> None:
    settings = load_settings({"NEARX_HOME": str(tmp_path / "home")})
    lake = lake_path(settings)
    simulate_to_lake(lake, SimulationSpec(("kathmandu",), date(2026, 1, 1), 14, 300, seed=3), progress=False)
    staged = [a for a in staging_assets if a.key in {staging_key(t) for t in ML_TABLES}]
    result = dg.materialize(
        [*staged, *ml_assets], resources={**build_resources(settings), **ml_resources(settings)}
    )
    assert result.success
    eta = result.asset_materializations_for_node("models__eta")[0].metadata
    assert eta["registered_model"].value == "nearx-eta"
    assert eta["promoted"].value is True
    assert eta["mae_s"].value < eta["baseline_routing_mae_s"].value

    from features.store import online, open_store
    from models.tracking import CHAMPION, configure

    client = configure(settings)
    for name in MODELS:
        assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    store = open_store(settings, lake / "features")
    merchant = "kat-m-000001"
    features = online(
        store,
        "eta_v1",
        [
            {
                "merchant_id": merchant,
                "courier_id": "kat-k-000001",
                "merchant_hour": f"{merchant}@19",
                "cell_hour": "nobody@19",
                "merchant_lat": 27.7,
                "merchant_lng": 85.3,
                "dropoff_lat": 27.71,
                "dropoff_lng": 85.31,
                "local_hour": 19,
                "weekday": 3,
                "rain": 0,
            }
        ],
    )
    assert features["merchant_prep_p50_s"][0] is not None
    assert features["straight_m"][0] > 1000


def test_definitions_include_the_ml_stage(tmp_path: Path) -> None:
    defs = build_definitions(load_settings({"NEARX_HOME": str(tmp_path)}))
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "features/offline",
        "models/eta",
        "models/fraud",
        "models/ranker",
        "models/green",
        "features/online",
    } <= keys
    assert defs.resolve_job_def("ml") is not None
