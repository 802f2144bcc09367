"""Prometheus metrics of the scoring path: what was scored, by which model, and what degraded.

The objects live on prometheus_client's default registry so ``/metrics`` exposes them
with the process's own collectors; labels stay low-cardinality (model, reason, source).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCORED = Counter("nearx_scored_total", "Requests scored by a registered model.", ["model", "version"])
DEGRADED = Counter(
    "nearx_degraded_total",
    "Requests answered by a fallback heuristic instead of a model.",
    ["scorer", "reason"],
)
MODEL_SWAPS = Counter(
    "nearx_model_swaps_total", "Champion versions loaded (start-up and hot swaps).", ["model"]
)
REGISTRY_ERRORS = Counter(
    "nearx_registry_errors_total",
    "Registry polls or loads that failed (the last good model stays).",
    ["model"],
)
MODEL_VERSION = Gauge("nearx_model_version", "The model version being served (0 = none).", ["model"])
FEATURE_LOOKUPS = Counter(
    "nearx_feature_lookups_total", "Online feature rows, by where they came from.", ["view", "source"]
)
WARM_UPS = Counter(
    "nearx_warm_ups_total",
    "Throwaway reads and predictions made before serving, so no request pays a first-call cost.",
    ["kind", "name"],
)
SCORING_SECONDS = Histogram(
    "nearx_scoring_seconds",
    "Time to score one request's candidates (features + model).",
    ["scorer"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
