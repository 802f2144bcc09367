"""Training: simulate a city, build the features, train and register the four models, and report
each model's holdout metrics beside the baselines measured in the same run.

Full size is 1M orders (two cities, 30 days); ``--quick`` is 50k orders over 14 days;
``NEARX_BENCH_TRAINING_ORDERS`` overrides the order count (same days), for a machine where
1M does not fit the time or memory at hand. The ranker trains on a sample of sessions at full
size (every session has ten impressions, so 1M orders means ~14M rows): :data:`RANKER_SESSIONS`
sessions, chosen by a hash.
Times include the point-in-time retrieval through each model's FeatureService and MLflow logging,
as the assets pay them.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from bench.result import Result
from nearx.settings import load_settings

RANKER_SESSIONS = 100_000


def _timed(results: list[Result], case: str, metric: str, step: object) -> object:
    start = time.perf_counter()
    value = step()  # type: ignore[operator]
    results.append(Result("training", case, metric, time.perf_counter() - start, "s"))
    return value


def run(quick: bool) -> list[Result]:
    from features.build import LAKE_TABLES, scan_lake, write_feature_tables
    from features.store import apply_repo, open_store
    from models.tracking import CHAMPION, configure
    from models.training import (
        ETA_MODEL,
        train_eta_model,
        train_fraud_model,
        train_green_model,
        train_ranker_model,
    )
    from pipelines.simulation.run import SimulationSpec, simulate_to_lake

    orders, days = (50_000, 14) if quick else (1_000_000, 30)
    orders = int(os.environ.get("NEARX_BENCH_TRAINING_ORDERS", orders))
    case = f"{orders:,} orders"
    spec = SimulationSpec.for_total_orders(("kathmandu", "pune"), date(2026, 1, 1), days, orders)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="nearx-bench-training-") as tmp:
        root = Path(tmp)
        settings = load_settings({"NEARX_HOME": str(root / "home")})
        lake = root / "lake"
        summary = _timed(results, case, "simulate", lambda: simulate_to_lake(lake, spec, progress=False))
        rows = summary.rows  # type: ignore[attr-defined]
        paths = {t: sorted((lake / "raw" / t).glob("**/*.parquet")) for t in (*LAKE_TABLES,)}
        features_dir = root / "features"
        _timed(results, case, "feature tables", lambda: write_feature_tables(scan_lake(paths), features_dir))
        store = open_store(settings, features_dir, online="sqlite")
        apply_repo(store)
        tables = {t: pl.scan_parquet(p) for t, p in paths.items()}
        sessions = pl.scan_parquet(sorted((lake / "raw" / "search_sessions").glob("**/*.parquet")))
        impressions = pl.scan_parquet(sorted((lake / "raw" / "search_impressions").glob("**/*.parquet")))
        share = min(1.0, RANKER_SESSIONS / max(1, rows.get("search_sessions", 1)))
        sample = sessions.filter(pl.col("session_id").hash(7) % 10_000 < int(share * 10_000))
        ranker_tables = {
            **tables,
            "search_sessions": sample,
            "search_impressions": impressions.join(sample.select("session_id"), on="session_id", how="semi"),
        }
        eta = _timed(results, case, "train eta", lambda: train_eta_model(settings, store, tables))
        fraud = _timed(results, case, "train fraud", lambda: train_fraud_model(settings, store, tables))
        ranker = _timed(
            results, case, "train ranker", lambda: train_ranker_model(settings, store, ranker_tables)
        )
        configure(settings)
        import mlflow

        champion = mlflow.pyfunc.load_model(f"models:/{ETA_MODEL}@{CHAMPION}").unwrap_python_model()
        green = _timed(
            results, case, "train green", lambda: train_green_model(settings, store, tables, champion)
        )

    e, f, r, g = (m.metrics for m in (eta, fraud, ranker, green))  # type: ignore[attr-defined]
    results += [
        Result("training", case, "orders simulated", float(rows.get("orders", 0)), "orders"),
        Result(
            "eta",
            case,
            "MAE P50",
            e["mae_s"],
            "s",
            "routing provider",
            e["baseline_routing_mae_s"],
            target=">= 20% below routing",
            met=e["mae_s"] <= 0.8 * e["baseline_routing_mae_s"],
        ),
        Result(
            "eta", case, "MAE P50", e["mae_s"], "s", "mean by distance", e["baseline_mean_by_distance_mae_s"]
        ),
        Result(
            "eta",
            case,
            "P90 coverage",
            e["p90_coverage"],
            "",
            lower_is_better=False,
            target="0.88-0.92",
            met=0.88 <= e["p90_coverage"] <= 0.92,
        ),
        Result(
            "fraud",
            case,
            "PR-AUC",
            f["pr_auc"],
            "",
            "rules",
            f.get("baseline_rules_pr_auc"),
            lower_is_better=False,
        ),
        Result(
            "fraud",
            case,
            "recall at 1% FPR",
            f["recall_at_1pct_fpr"],
            "",
            "rules (any flag)",
            f.get("baseline_rules_recall"),
            lower_is_better=False,
        ),
        Result(
            "fraud",
            case,
            "expected cost / order",
            f["expected_cost_per_order"],
            "minor",
            "rules",
            f.get("baseline_rules_expected_cost_per_order"),
        ),
        Result(
            "fraud", case, "anomaly PR-AUC (IsolationForest)", f["anomaly_pr_auc"], "", lower_is_better=False
        ),
        Result(
            "ranker",
            case,
            "NDCG@10",
            r["ndcg_at_10"],
            "",
            "distance only",
            r["baseline_distance_ndcg_at_10"],
            lower_is_better=False,
        ),
        Result(
            "ranker",
            case,
            "NDCG@10",
            r["ndcg_at_10"],
            "",
            "rating only",
            r["baseline_rating_ndcg_at_10"],
            lower_is_better=False,
        ),
        Result(
            "ranker",
            case,
            "MRR",
            r["mrr"],
            "",
            "distance only",
            r["baseline_distance_mrr"],
            lower_is_better=False,
        ),
        Result(
            "ranker",
            case,
            "MRR",
            r["mrr"],
            "",
            "rating only",
            r["baseline_rating_mrr"],
            lower_is_better=False,
        ),
        Result(
            "green",
            case,
            "AUC",
            g["auc"],
            "",
            "distance decile",
            g["baseline_distance_auc"],
            lower_is_better=False,
        ),
        Result("green", case, "Brier", g["brier"], "", "distance decile", g["baseline_distance_brier"]),
    ]
    for threshold in (50, 80, 90):
        results += [
            Result(
                "green",
                case,
                f"policy p>={threshold / 100:.1f}: CO2e saved",
                g[f"policy_{threshold}_co2e_saved_kg"],
                "kg",
                lower_is_better=False,
            ),
            Result(
                "green",
                case,
                f"policy p>={threshold / 100:.1f}: ETA given up",
                g[f"policy_{threshold}_eta_given_up_s"],
                "s",
            ),
        ]
    return results
