"""MLflow on local files: SQLite tracking and registry under ``settings.home / "mlflow"``, never a server.

Every training run goes through :func:`log_training`: parameters, metrics, data and
feature-service versions, the signature, plots, a new registered version, and the
champion/challenger gate, whose decision is logged on the run and as a version tag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import mlflow
import pandas as pd  # type: ignore[import-untyped]
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel

from nearx.settings import Settings

matplotlib.use("Agg")

PIP_REQUIREMENTS = ["nearx", "lightgbm", "scikit-learn", "pandas", "numpy", "polars"]
"""What a pyfunc needs to load: the project (its model classes) and the libraries they call."""
CHAMPION = "champion"
CHALLENGER = "challenger"


def tracking_uri(settings: Settings) -> str:
    root = settings.home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(settings: Settings) -> Path:
    return settings.home / "mlflow" / "artifacts"


def configure(settings: Settings) -> MlflowClient:
    """Point this process's MLflow at the installation's store (tracking and registry)."""
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: Settings, name: str) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = artifact_root(settings) / name
    location.mkdir(parents=True, exist_ok=True)
    return str(mlflow.create_experiment(name, artifact_location=location.as_uri()))


@dataclass(frozen=True)
class Gate:
    """Promote the challenger when its holdout score beats the champion's on the same rows."""

    metric: str
    higher_is_better: bool
    score: Callable[[pd.DataFrame], float]
    """Scores a model's predictions on the holdout (``model.predict(holdout_input)``)."""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    promoted: bool
    decision: str
    challenger_score: float
    champion_score: float | None


def _beats(challenger: float, champion: float, higher_is_better: bool) -> bool:
    if math.isnan(champion):
        return True
    return challenger > champion if higher_is_better else challenger < champion


def log_training(
    settings: Settings,
    *,
    name: str,
    model: PythonModel,
    holdout_input: pd.DataFrame,
    gate: Gate,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    figures: Mapping[str, Any],
) -> Registered:
    """One run: log, register a version, and move ``champion`` only if it wins on the holdout."""
    client = configure(settings)
    # Numbers are doubles in the signature: serving may send a missing hour or count as null.
    holdout_input = holdout_input.astype(
        {c: "float64" for c in holdout_input.columns if pd.api.types.is_integer_dtype(holdout_input[c])}
    )
    with mlflow.start_run(experiment_id=experiment_id(settings, name), run_name=f"{name}-train") as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics({key: float(value) for key, value in metrics.items() if math.isfinite(value)})
        mlflow.set_tags(dict(tags))
        for filename, figure in figures.items():
            mlflow.log_figure(figure, filename)
        example = holdout_input.head(5)
        output = model.predict(None, example)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=infer_signature(example, output),
            input_example=example,
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,  # explicit: inference imports the world and takes ~30 s
        )
        version = str(info.registered_model_version)
        challenger_score = gate.score(model.predict(None, holdout_input))
        champion_score: float | None = None
        champion_version: str | None = None
        try:
            current = client.get_model_version_by_alias(name, CHAMPION)
            champion_version = str(current.version)
        except mlflow.exceptions.MlflowException:
            current = None
        if current is not None:
            try:
                champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
                champion_score = gate.score(champion.predict(holdout_input))
            except Exception as exc:  # an incompatible champion (other features) cannot be compared
                champion_score = float("nan")
                mlflow.set_tag("gate.champion_error", str(exc)[:500])
        promoted = champion_score is None or _beats(challenger_score, champion_score, gate.higher_is_better)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
            decision = f"promoted v{version}: {gate.metric} {challenger_score:.4f}" + (
                f" beats v{champion_version} {champion_score:.4f}" if champion_version else " (first)"
            )
        else:
            client.set_registered_model_alias(name, CHALLENGER, version)
            decision = (
                f"kept v{champion_version}: {gate.metric} {champion_score:.4f} vs challenger "
                f"v{version} {challenger_score:.4f}"
            )
        mlflow.log_metric(f"gate_{gate.metric}_challenger", challenger_score)
        if champion_score is not None and math.isfinite(champion_score):
            mlflow.log_metric(f"gate_{gate.metric}_champion", champion_score)
        mlflow.set_tags({"gate.decision": decision, "gate.promoted": str(promoted)})
        client.set_model_version_tag(name, version, "gate.decision", decision)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        return Registered(
            name, version, run.info.run_id, promoted, decision, challenger_score, champion_score
        )


def new_figure() -> Any:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))
