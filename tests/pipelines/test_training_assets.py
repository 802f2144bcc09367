"""End to end on a small simulated city: staged lake and marts -> features -> training -> registry ->
online store; then the notebooks run against that installation."""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from nearx.settings import Settings, load_settings
from pipelines.assets.marts import mart_assets
from pipelines.assets.ml import ml_assets, ml_resources
from pipelines.assets.staging import staging_assets
from pipelines.definitions import build_definitions
from pipelines.resources import build_resources, lake_path
from pipelines.simulation.run import SimulationSpec, simulate_to_lake

MODELS = ("nearx-eta", "nearx-fraud", "nearx-ranker", "nearx-green")
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class Installation:
    settings: Settings
    home: Path
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    home = tmp_path_factory.mktemp("ml") / "home"
    settings = load_settings({"NEARX_HOME": str(home)})
    spec = SimulationSpec(("kathmandu",), date(2026, 1, 1), 14, 300, seed=3)
    simulate_to_lake(lake_path(settings), spec, progress=False)
    result = dg.materialize(
        [*staging_assets, *mart_assets, *ml_assets],
        resources={**build_resources(settings), **ml_resources(settings)},
    )
    return Installation(settings, home, result)


@pytest.mark.slow
def test_ml_graph_registers_champions_with_metadata(installation: Installation) -> None:
    assert installation.result.success
    eta = installation.result.asset_materializations_for_node("models__eta")[0].metadata
    assert eta["registered_model"].value == "nearx-eta"
    assert eta["promoted"].value is True
    assert eta["mae_s"].value < eta["baseline_routing_mae_s"].value

    from models.tracking import CHAMPION, configure

    client = configure(installation.settings)
    for name in MODELS:
        assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"


@pytest.mark.slow
def test_online_features_are_readable_after_materialisation(installation: Installation) -> None:
    from features.store import online, open_store

    store = open_store(installation.settings, lake_path(installation.settings) / "features")
    merchant = "kat-m-000001"
    row = {
        "merchant_id": merchant,
        "courier_id": "kat-k-000001",
        "merchant_hour": f"{merchant}@19",
        "cell_hour": "unknown@19",
        "merchant_lat": 27.7,
        "merchant_lng": 85.3,
        "dropoff_lat": 27.71,
        "dropoff_lng": 85.31,
        "local_hour": 19,
        "weekday": 3,
        "rain": 0,
    }
    features = online(store, "eta_v1", [row])
    assert features["merchant_prep_p50_s"][0] is not None
    assert features["cell_congestion"][0] is None  # an unknown cell has no features, not an error
    assert features["straight_m"][0] > 1000


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["explore_marts.py", "diagnose_model.py", "compare_policies.py"])
def test_notebooks_run_on_the_small_city(
    installation: Installation,
    notebook: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NEARX_HOME", str(installation.home))
    runpy.run_path(str(NOTEBOOKS / notebook), run_name="__main__")
    assert capsys.readouterr().out.strip()


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
