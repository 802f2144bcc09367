"""The model loader: ``models:/<name>@champion`` from the MLflow registry, checked, hot-swapped.

Why it is shaped like this:

- A request reads :meth:`ModelRegistry.get` once and keeps that :class:`LoadedModel` for its
  whole life. A swap replaces the whole name → model mapping in one assignment (atomic in
  CPython), so in-flight requests finish on the model they started with and none is dropped.
- The poll runs in a worker thread (MLflow's client and ``load_model`` block) on a timer;
  it only loads when the alias points at another version than the one served.
- A version is served only after its signature passes the scorer's check (every input the
  model wants is one the scorer can supply; the outputs it needs are there). A version that
  fails to resolve, load or check leaves the last good model in place and is counted.
- Before the swap, the new version makes one throwaway prediction (:func:`warm_up`): LightGBM
  and the pyfunc pay their first-call costs (10-50 ms) in the poller, not in a request's budget.
- With a :class:`~models.native_trees.TreeCompiler`, a version's LightGBM forests (a booster, or
  a :class:`~models.native_trees.HasTrees` Python model's) run as native code: loaded from the
  compile cache before the swap, or compiled in a child process and swapped in when ready.
- Nothing is created on the way: a missing SQLite registry is "unavailable", not a new
  empty store, so an API without trained models starts in milliseconds and serves fallbacks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from models.native_trees import HasTrees, TreeCompiler, TreeScorer
from nearx.clock import utc_now
from serving import metrics

log = logging.getLogger(__name__)

CHAMPION = "champion"


class RegistryUnavailable(RuntimeError):
    """The registry could not be asked (no store, I/O error, no such model or alias)."""


class SignatureMismatch(ValueError):
    """A model version wants inputs the scorer cannot supply, or lacks outputs it needs."""


@dataclass(frozen=True)
class ModelSpec:
    """What a scorer needs from a registered model.

    ``supplied`` are the columns the scorer can build per candidate (online features plus
    request-time columns); ``outputs`` the prediction columns it reads (empty: one score).
    """

    name: str
    supplied: frozenset[str]
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: str
    run_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """One served version: the pyfunc, its input columns in signature order, its provenance."""

    name: str
    version: str
    run_id: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    feature_service: str | None
    pyfunc: Any
    loaded_at: datetime
    trees: tuple[TreeScorer, ...] = ()
    """The forests it scores through (native code once compiled); a booster's is its one scorer."""

    def predict(self, frame: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
        """Predictions as a frame: the model's named outputs, or one ``score`` column.

        ``frame`` is a DataFrame or a mapping of column arrays holding at least the inputs.
        The signature was checked once at load, so the per-request path skips MLflow's
        schema enforcement (~15 ms for 200 rows) and calls the model underneath: a LightGBM
        booster gets a float matrix in signature order, a Python model that scores columns
        (:class:`ColumnarModel`, the ranker) the arrays themselves, any other Python model
        its own ``predict`` on a pandas frame of the inputs.
        """
        impl = getattr(self.pyfunc, "_model_impl", None)
        booster = getattr(impl, "lgb_model", None)
        python_model = getattr(impl, "python_model", None)
        if booster is not None and type(booster).__name__ == "Booster":
            matrix = np.column_stack([np.asarray(frame[name], dtype=np.float64) for name in self.inputs])
            raw: Any = self.trees[0].predict(matrix) if self.trees else booster.predict(matrix, num_threads=1)
        elif self.columnar is not None:
            return pd.DataFrame(self.predict_columns(frame))
        else:
            columns = pd.DataFrame({name: frame[name] for name in self.inputs})
            if python_model is not None:
                raw = python_model.predict(None, columns)
            else:
                raw = self.pyfunc.predict(columns)
        if isinstance(raw, pd.DataFrame):
            return raw.reset_index(drop=True)
        values = np.asarray(raw, dtype=np.float64)
        values = values.reshape(values.shape[0], -1)
        if values.shape[1] == 1:
            return pd.DataFrame({"score": values[:, 0]})
        return pd.DataFrame(values, columns=[f"score_{i}" for i in range(values.shape[1])])

    def predict_columns(self, columns: Mapping[str, Any]) -> Mapping[str, Any]:
        """The named outputs as arrays; a :class:`ColumnarModel` builds no frame on the way in or out
        (for 20 rows the frames cost more than the trees), any other model goes through :meth:`predict`."""
        columnar = self.columnar
        if columnar is not None:
            return columnar.predict_columns({name: columns[name] for name in self.inputs})
        frame = self.predict(columns)
        return {name: frame[name].to_numpy() for name in frame.columns}

    @functools.cached_property
    def columnar(self) -> ColumnarModel | None:
        """The Python model underneath if it scores columns, found once per loaded version (a
        runtime protocol check costs microseconds, and each match asks three models)."""
        python_model = getattr(getattr(self.pyfunc, "_model_impl", None), "python_model", None)
        return python_model if isinstance(python_model, ColumnarModel) else None


@runtime_checkable
class ColumnarModel(Protocol):
    """A Python model with a numeric fast path: one array per input column in, named outputs out.

    Same answers as its pandas ``predict``; serving calls this one, since a pandas frame of
    200 rows (and what a wrapper does with it) costs more than the trees themselves.
    """

    def predict_columns(self, columns: Mapping[str, Any]) -> Mapping[str, Any]: ...


def warm_up(model: LoadedModel) -> None:
    """One prediction of a single row of missing values, its answer thrown away.

    Best effort: every served model reads missing values (NaN, or a missing category), so this
    only fails for a version that would fail requests too; that is logged, and the version is
    served anyway, since the signature check has passed and the scorers fall back per request.
    """
    try:
        model.predict({name: np.array([np.nan]) for name in model.inputs})
    except Exception:
        log.warning("warm-up prediction of %s version %s failed", model.name, model.version, exc_info=True)
        return
    metrics.WARM_UPS.labels("model", model.name).inc()


class RegistrySource(Protocol):
    """Where versions come from: MLflow in production and tests (:class:`MlflowSource`)."""

    def resolve(self, name: str, alias: str) -> VersionRef: ...

    def load(self, ref: VersionRef) -> Any: ...


class MlflowSource:
    """The MLflow model registry at ``tracking_uri`` (SQLite under ``settings.home`` by default)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def _client(self) -> Any:
        parsed = urlparse(self.tracking_uri)
        if parsed.scheme == "sqlite":
            path = Path(self.tracking_uri.removeprefix("sqlite:///"))
            if not path.is_file():
                raise RegistryUnavailable(f"no model registry at {path}")
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def resolve(self, name: str, alias: str) -> VersionRef:
        from mlflow.exceptions import MlflowException

        try:
            version = self._client().get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            raise RegistryUnavailable(f"{name}@{alias}: {exc.message}") from exc
        return VersionRef(name, str(version.version), version.run_id, dict(version.tags or {}))

    def load(self, ref: VersionRef) -> Any:
        import mlflow

        # Both stores: loading a version also reads its logged model from the tracking store,
        # which would otherwise be a new ``./mlflow.db`` in the working directory.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return mlflow.pyfunc.load_model(f"models:/{ref.name}/{ref.version}")


def tree_scorers(pyfunc: Any) -> tuple[TreeScorer, ...]:
    """The forests a loaded pyfunc scores through: a LightGBM booster's own, or a Python model's."""
    impl = getattr(pyfunc, "_model_impl", None)
    booster = getattr(impl, "lgb_model", None)
    if booster is not None and type(booster).__name__ == "Booster":
        return (TreeScorer(booster),)
    python_model = getattr(impl, "python_model", None)
    return tuple(python_model.tree_scorers()) if isinstance(python_model, HasTrees) else ()


def _constant(spec: ModelSpec) -> Callable[[], ModelSpec]:
    return lambda: spec


def check_signature(spec: ModelSpec, pyfunc: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model's input and output column names, if the scorer can feed it and read it."""
    inputs_schema = pyfunc.metadata.get_input_schema()
    if inputs_schema is None or not inputs_schema.has_input_names():
        raise SignatureMismatch(f"{spec.name}: the model has no named input signature")
    inputs = tuple(str(n) for n in inputs_schema.input_names())
    missing = sorted(set(inputs) - spec.supplied)
    if missing:
        raise SignatureMismatch(f"{spec.name}: the scorer cannot supply {missing}")
    outputs_schema = pyfunc.metadata.get_output_schema()
    outputs: tuple[str, ...] = ("score",)  # an unnamed output (a booster's array) is read as one score
    if outputs_schema is not None and outputs_schema.has_input_names():
        outputs = tuple(str(n) for n in outputs_schema.input_names())
    lacking = sorted(set(spec.outputs) - set(outputs))
    if lacking:
        raise SignatureMismatch(f"{spec.name}: the model does not output {lacking}")
    return inputs, outputs


@dataclass
class ModelStatus:
    """What the poller last saw for one model (exposed by the runtime for health and tests)."""

    version: str | None = None
    last_error: str | None = None
    last_checked: datetime | None = None


class ModelRegistry:
    """The served champion of each spec, refreshed by :meth:`refresh` (blocking) or :meth:`poll`."""

    def __init__(
        self,
        source: RegistrySource,
        specs: Sequence[ModelSpec] | Mapping[str, Callable[[], ModelSpec]],
        *,
        alias: str = CHAMPION,
        compiler: TreeCompiler | None = None,
    ) -> None:
        """``specs`` may be given lazily (name → factory): building one can import Feast, which
        takes seconds, and is only needed once a version is there to check. Without a
        ``compiler`` the forests run in LightGBM."""
        self.source = source
        self.compiler = compiler
        self._spec_factories: dict[str, Callable[[], ModelSpec]] = (
            dict(specs) if isinstance(specs, Mapping) else {s.name: _constant(s) for s in specs}
        )
        self._specs: dict[str, ModelSpec] = {}
        self.alias = alias
        self._models: Mapping[str, LoadedModel] = {}
        self._refreshing = threading.Lock()
        self.status = {name: ModelStatus() for name in self._spec_factories}

    def get(self, name: str) -> LoadedModel | None:
        """The model to use for one request (keep the reference; don't call again mid-request)."""
        return self._models.get(name)

    def refresh(self) -> None:
        """Ask the registry for each alias; load, check and swap in any version that moved."""
        with self._refreshing:
            for name in self._spec_factories:
                status = self.status[name]
                status.last_checked = utc_now()
                try:
                    self._refresh_one(name)
                    status.last_error = None
                except (RegistryUnavailable, SignatureMismatch, OSError) as exc:
                    self._failed(name, exc)
                except Exception as exc:  # a broken artifact must not kill the poller: keep last good
                    log.exception("loading %s failed", name)
                    self._failed(name, exc)

    def _failed(self, name: str, exc: BaseException) -> None:
        self.status[name].last_error = f"{type(exc).__name__}: {exc}"
        metrics.REGISTRY_ERRORS.labels(name).inc()

    def spec(self, name: str) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = self._specs[name] = self._spec_factories[name]()
        return spec

    def _refresh_one(self, name: str) -> None:
        ref = self.source.resolve(name, self.alias)
        current = self._models.get(name)
        if current is not None and current.version == ref.version:
            return
        spec = self.spec(name)
        pyfunc = self.source.load(ref)
        inputs, outputs = check_signature(spec, pyfunc)
        loaded = LoadedModel(
            name=spec.name,
            version=ref.version,
            run_id=ref.run_id,
            inputs=inputs,
            outputs=outputs,
            feature_service=ref.tags.get("feature_service"),
            pyfunc=pyfunc,
            loaded_at=utc_now(),
            trees=tree_scorers(pyfunc),
        )
        if self.compiler is not None:
            for scorer in loaded.trees:
                outcome = self.compiler.accelerate(scorer)
                log.info("%s version %s: native trees %s", spec.name, ref.version, outcome)
        warm_up(loaded)
        self._models = {**self._models, spec.name: loaded}  # one assignment: the swap
        self.status[spec.name].version = ref.version
        metrics.MODEL_SWAPS.labels(spec.name).inc()
        metrics.MODEL_VERSION.labels(spec.name).set(float(ref.version) if ref.version.isdigit() else 0.0)
        log.info("serving %s version %s", spec.name, ref.version)

    def close(self) -> None:
        """Stop the compiles still running (their versions keep scoring in LightGBM)."""
        if self.compiler is not None:
            self.compiler.close()

    async def poll(self, interval_s: float) -> None:
        """Refresh now and then every ``interval_s`` until cancelled (the runtime's background task)."""
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(interval_s)
