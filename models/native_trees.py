"""LightGBM forests as native code: compiled once per model, cached on disk, the booster as fallback.

Why: ``Booster.predict`` on 200 rows of a 200-tree ranker costs ~1 ms on this machine, most
of it LightGBM's per-row set-up around the tree walk; the same forest compiled to machine code
answers in ~0.04 ms, with the same numbers.

How:

- lleaves generates the forest's LLVM IR. Its own ``Model.compile`` calls llvmlite APIs that
  0.45 removed (the legacy pass manager, ``initialize``), and numba needs the newer llvmlite,
  so the optimisation and machine-code steps here use llvmlite's new pass builder
  (:func:`object_code`).
- The compile (~5 s for 200 trees of 31 leaves) runs in a child process at low priority
  (``python -m models.native_trees MODEL_TXT OBJECT``): lleaves builds the IR in Python, which
  in the serving process would hold the GIL for the requests, and an LLVM failure can only fail
  the child. The parent loads the object code (~10 ms).
- The object code is cached in ``cache_dir`` under the hash of the model text, the library
  versions and the host CPU (the code is built for it), and written atomically (a temporary
  file, then a rename), so a restart or a second process loads it instead of compiling.
- A compiled forest serves only once its answers on probe rows (both sides of every split
  threshold, zeros and missing values) equal the booster's; until then, and whenever a compile
  or a load fails, :class:`TreeScorer` answers from the booster.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Outcome = Literal["cached", "compiled", "compiling", "failed"]
"""What :meth:`TreeCompiler.accelerate` did: loaded the cached code, compiled it (and waited),
started a compile in the background, or left the booster in charge."""

ENTRY = "forest_root"
_ENTRY_TYPE = ctypes.CFUNCTYPE(
    None, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double), ctypes.c_int32, ctypes.c_int32
)
_LLVM = threading.Lock()
"""LLVM's in-process state (target machines, JIT engines) is touched by one thread at a time."""
PROBE_ROWS = 256
ZERO = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold``: it reads a dense row's values of at most this size as 0."""


@dataclass(frozen=True)
class NativeForest:
    """A forest's machine code in this process: ``predict`` is ``Booster.predict`` for float64 rows."""

    engine: Any  # owns the code: the entry point is valid while this lives
    entry: Any
    n_features: int
    n_outputs: int

    @classmethod
    def load(cls, code: bytes, n_features: int, n_outputs: int) -> NativeForest:
        import llvmlite.binding as llvm

        with _LLVM:
            engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
            engine.set_object_cache(getbuffer_func=lambda _module: code)
            engine.finalize_object()
            entry = _ENTRY_TYPE(engine.get_function_address(ENTRY))
        return cls(engine, entry, n_features, n_outputs)

    def predict(self, matrix: FloatArray) -> FloatArray:
        data = np.ascontiguousarray(matrix, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {data.shape}")
        tiny = np.abs(data) <= ZERO  # zero to LightGBM, whose zero-split bounds sit right there
        if tiny.any():
            data = np.where(tiny, 0.0, data)
        rows = data.shape[0]
        out = np.zeros(rows * self.n_outputs, dtype=np.float64)  # the forest adds into its output
        pointer = ctypes.POINTER(ctypes.c_double)
        self.entry(data.ctypes.data_as(pointer), out.ctypes.data_as(pointer), 0, rows)
        return out if self.n_outputs == 1 else out.reshape(rows, self.n_outputs)


class TreeScorer:
    """``booster.predict(matrix, num_threads=1)``, from native code once a :class:`TreeCompiler` made it.

    The swap is one attribute assignment, so a request in flight finishes on whichever it started.
    A pickled scorer keeps its booster only: unpickled, it answers from LightGBM until compiled again.
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self._native: NativeForest | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"booster": self.booster}  # the native code lives in this process only

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.booster = state["booster"]
        self._native = None

    @property
    def native(self) -> bool:
        return self._native is not None

    def predict(self, matrix: FloatArray) -> FloatArray:
        native = self._native
        if native is not None:
            return native.predict(matrix)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def use(self, forest: NativeForest, rows: FloatArray) -> bool:
        """Serve ``forest`` if it agrees with the booster on ``rows`` (:func:`probe_rows`); say if it does."""
        expected = np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)
        if not np.allclose(forest.predict(rows), expected, rtol=1e-9, atol=1e-12):
            return False
        self._native = forest
        return True


@runtime_checkable
class HasTrees(Protocol):
    """A model whose LightGBM forests may run as native code: it scores through these scorers."""

    def tree_scorers(self) -> Sequence[TreeScorer]: ...


class TreeCompiler:
    """Makes :class:`TreeScorer` s native, with the compiled code cached in ``cache_dir``.

    ``background``: a forest not in the cache is compiled while its booster serves, and swapped
    in when ready (a server's choice); otherwise :meth:`accelerate` waits for the compile.
    """

    def __init__(self, cache_dir: Path, *, background: bool = True, timeout_s: float = 600.0) -> None:
        self.cache_dir = cache_dir
        self.background = background
        self.timeout_s = timeout_s
        self._children: set[subprocess.Popen[bytes]] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def accelerate(self, scorer: TreeScorer) -> Outcome:
        """Native code for ``scorer``: from the cache at once, else compiled (now, or in the background)."""
        text = scorer.booster.model_to_string()
        key = cache_key(text)
        code = self.cache_dir / f"{key}.o"
        if code.is_file():
            return "cached" if self._load(scorer, code, text) else "failed"
        if self._closed:
            return "failed"
        model_file = self.cache_dir / f"{key}.txt"
        try:
            _write_atomically(model_file, text.encode())
        except OSError:  # an unwritable cache must not keep a version from serving
            log.warning("cannot write %s; its booster keeps serving", model_file, exc_info=True)
            return "failed"
        if not self.background:
            return "compiled" if self._compile(scorer, text, model_file, code) else "failed"
        thread = threading.Thread(
            target=self._compile,
            args=(scorer, text, model_file, code),
            name=f"compile-{key[:12]}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return "compiling"

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the background compiles started so far have finished (or ``timeout_s`` passed)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout_s)

    def close(self) -> None:
        """Stop the compiles still running (their boosters keep serving); start no more."""
        with self._lock:
            self._closed = True
            children = list(self._children)
        for child in children:
            child.kill()

    def _compile(self, scorer: TreeScorer, text: str, model_file: Path, code: Path) -> bool:
        command = [sys.executable, "-m", "models.native_trees", str(model_file), str(code)]
        with self._lock:
            if self._closed:
                return False
            try:
                child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError:
                log.warning(
                    "cannot start the compile of %s; its booster keeps serving", model_file, exc_info=True
                )
                return False
            self._children.add(child)
        try:
            _, stderr = child.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            log.warning("compiling %s took over %g s; its booster keeps serving", model_file, self.timeout_s)
            return False
        finally:
            with self._lock:
                self._children.discard(child)
        if child.returncode != 0 and self._closed:
            return False  # stopped by close(): the process is shutting down
        if child.returncode != 0:
            reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
            log.warning("compiling %s failed (%s); its booster keeps serving", model_file, reason[0])
            return False
        return self._load(scorer, code, text)

    def _load(self, scorer: TreeScorer, code: Path, text: str) -> bool:
        booster = scorer.booster
        try:
            forest = NativeForest.load(
                code.read_bytes(), booster.num_feature(), booster.num_model_per_iteration()
            )
            if scorer.use(forest, probe_rows(text, forest.n_features)):
                return True
        except (OSError, RuntimeError, ValueError):
            log.warning("loading the native code %s failed; its booster keeps serving", code, exc_info=True)
            return False
        log.error("the native code %s disagrees with its booster; removed, the booster keeps serving", code)
        code.unlink(missing_ok=True)
        return False


def cache_key(model_text: str) -> str:
    """The code's identity: the model, what compiles it, and the CPU it is built for."""
    import llvmlite.binding as llvm

    digest = hashlib.sha256(model_text.encode())
    for part in (
        importlib.metadata.version("lleaves"),
        importlib.metadata.version("llvmlite"),
        llvm.get_process_triple(),
        llvm.get_host_cpu_name(),
        _host_features(),
    ):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def probe_rows(model_text: str, n_features: int, rows: int = PROBE_ROWS) -> FloatArray:
    """Rows that walk many paths: each feature drawn from its split thresholds and the floats
    either side, small category codes, zero and NaN (the missing-value branches)."""
    values: list[list[float]] = [[0.0, np.nan] for _ in range(n_features)]
    fields: dict[str, list[str]] = {}
    for line in model_text.splitlines():
        name, _, value = line.partition("=")
        if name in ("split_feature", "threshold", "decision_type"):
            fields[name] = value.split()
        if len(fields) == 3:
            for feature, threshold, decision in zip(
                fields["split_feature"], fields["threshold"], fields["decision_type"], strict=True
            ):
                if int(decision) & 1:  # categorical: the threshold indexes a bitset of categories
                    values[int(feature)].extend(range(8))
                else:
                    at = float(threshold)
                    values[int(feature)].extend((np.nextafter(at, -np.inf), at, np.nextafter(at, np.inf)))
            fields = {}
    rng = np.random.default_rng(0)
    return np.column_stack([rng.choice(np.asarray(v, dtype=np.float64), rows) for v in values])


def object_code(model_file: Path) -> bytes:
    """Machine code of the forest in a LightGBM model file (lleaves' IR, optimised at -O3)."""
    import llvmlite.binding as llvm
    import llvmlite.ir
    from lleaves.compiler.ast import parse_to_ast
    from lleaves.compiler.codegen import gen_forest

    forest = parse_to_ast(str(model_file))
    forest.raw_score = False  # apply the objective's transform, as Booster.predict does
    ir = llvmlite.ir.Module(name="forest")
    gen_forest(forest, ir, 34, ENTRY, True)  # blocks of 34 trees (lleaves' default), float64
    ir.triple = llvm.get_process_triple()
    module = llvm.parse_assembly(str(ir))
    module.verify()
    machine = _target_machine()
    passes = llvm.create_pass_builder(machine, llvm.PipelineTuningOptions(speed_level=3))
    passes.getModulePassManager().run(module, passes)
    compiled: list[bytes] = []
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.set_object_cache(notify_func=lambda _module, data: compiled.append(data))
    engine.finalize_object()
    return compiled[0]


def _target_machine() -> Any:
    """A target machine for this CPU; a new one for each engine, which owns and frees it."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    # the large code model: a forest of hundreds of trees outgrows the small one's offsets
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=_host_features(), reloc="pic", codemodel="large"
    )


def _host_features() -> str:
    import llvmlite.binding as llvm

    try:
        return str(llvm.get_host_cpu_features().flatten())
    except RuntimeError:  # LLVM cannot read this CPU's features: build for its name alone
        return ""


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_bytes(data)
    partial.replace(path)


def main(argv: Sequence[str]) -> None:
    """The child's work: compile ``MODEL_TXT`` into ``OBJECT``, at low priority."""
    model_file, code = (Path(arg) for arg in argv)
    os.nice(10)
    _write_atomically(code, object_code(model_file))


if __name__ == "__main__":
    main(sys.argv[1:])
