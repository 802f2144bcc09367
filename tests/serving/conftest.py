"""One MLflow store per test module with real LightGBM ranker versions registered in it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.trained import RANKER_INPUTS, register, train_ranker


@dataclass(frozen=True)
class RankerStore:
    uri: str
    root: Path
    name: str
    versions: tuple[str, ...]


@pytest.fixture(scope="module")
def ranker_store(tmp_path_factory: pytest.TempPathFactory) -> RankerStore:
    """Two versions of a ranker (v1 champion) and v3 wanting an input no scorer supplies."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    v1 = register(uri, "ranker-test", train_ranker(seed=1), tags={"feature_service": "ranker_v1"})
    v2 = register(uri, "ranker-test", train_ranker(seed=2, n_estimators=20), promote=False)
    odd = train_ranker(seed=3, n_estimators=5)
    v3 = register(uri, "ranker-test", odd, inputs=[*RANKER_INPUTS[:-1], "shoe_size"], promote=False)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("ranker-test", "champion", v1)
    return RankerStore(uri, root, "ranker-test", (v1, v2, v3))
