"""``nearx models evaluate``: a user's own file in, metrics against the baselines out, clear errors."""

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nearx.cli import app
from pipelines.simulation.run import SimulationSpec, simulate_to_lake

runner = CliRunner()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("byod")
    simulate_to_lake(root, SimulationSpec(("kathmandu",), date(2026, 1, 1), 21, 500, seed=11), progress=False)
    return root


def _scan(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((lake / "raw" / table).glob("**/*.parquet")))


@pytest.fixture(scope="module")
def deliveries(lake: Path) -> pl.DataFrame:
    return (
        _scan(lake, "deliveries")
        .filter(pl.col("status") == "delivered")
        .select("created_at", "distance_m", "duration_s", "mode", "rain", "merchant_load")
    )


def _evaluate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", "evaluate", *args])
    return result.exit_code, result.output


def test_eta_on_a_csv_with_created_at_beats_both_baselines(deliveries: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    deliveries.write_csv(path)
    code, output = _evaluate("eta", "--data", str(path), "--json")
    assert code == 0, output
    metrics = json.loads(output)
    assert metrics["mae_s"] < metrics["baseline_mean_by_distance_mae_s"]
    assert metrics["mae_s"] < metrics["baseline_routing_mae_s"]
    assert 0.8 <= metrics["p90_coverage"] <= 0.97


def test_eta_on_parquet_with_hour_and_weekday_prints_a_table(
    deliveries: pl.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "history.parquet"
    deliveries.with_columns(
        hour=pl.col("created_at").dt.hour(), day_of_week=pl.col("created_at").dt.weekday()
    ).drop("created_at").write_parquet(path)
    code, output = _evaluate("eta", "--data", str(path))
    assert code == 0, output
    assert "baseline_routing_mae_s" in output
    assert "mae_s" in output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("duration_s"), "missing required column(s): duration_s"),
        (
            lambda f: f.with_columns(pl.col("distance_m").cast(pl.String) + "m"),
            "'distance_m' must be numeric",
        ),
        (lambda f: f.head(50), "too few rows: 50"),
        (lambda f: f.with_columns(created_at=pl.lit("yesterday")), "'created_at' is not a timestamp"),
    ],
)
def test_eta_file_errors_are_explained(
    deliveries: pl.DataFrame, tmp_path: Path, change: object, message: str
) -> None:
    path = tmp_path / "bad.parquet"
    change(deliveries).write_parquet(path)  # type: ignore[operator]
    code, output = _evaluate("eta", "--data", str(path))
    assert code == 2
    assert message in output


def test_unknown_model_and_file_type_are_refused(tmp_path: Path) -> None:
    code, output = _evaluate("churn", "--data", str(tmp_path / "x.csv"))
    assert code != 0
    assert "choose one of eta, fraud" in output
    (tmp_path / "x.txt").write_text("a")
    code, output = _evaluate("eta", "--data", str(tmp_path / "x.txt"))
    assert code == 2
    assert "use a .csv or .parquet file" in output


def test_fraud_on_orders_reports_pr_auc_and_cost(lake: Path, tmp_path: Path) -> None:
    orders = _scan(lake, "orders").select(
        "created_at",
        pl.col("is_fraud").alias("label"),
        pl.col("total_minor").alias("amount"),
        "new_device",
        "phone_changed_recently",
        "payment_method",
        pl.col("promo_code").fill_null("none"),
        "discount_minor",
    )
    path = tmp_path / "payments.parquet"
    orders.write_parquet(path)
    code, output = _evaluate("fraud", "--data", str(path), "--json")
    assert code == 0, output
    metrics = json.loads(output)
    assert metrics["pr_auc"] > metrics["fraud_rate_test"]  # better than chance
    assert metrics["expected_cost_per_order"] < metrics["baseline_approve_all_expected_cost_per_order"]
    code, output = _evaluate("fraud", "--data", str(_write(orders.drop("label"), tmp_path)))
    assert code == 2
    assert "missing required column(s): label" in output


def _write(frame: pl.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "nolabel.parquet"
    frame.write_parquet(path)
    return path
