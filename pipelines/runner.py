"""Materialise the whole graph from code: the entry point of ``nearx pipeline run``, tests and bench.

Partitioned simulation runs go one partition per run (city, then city-day), then
one run refreshes extracts, staging and marts. Each run is a normal Dagster run in
``instance``, so the UI shows the same history whether the CLI or the UI ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
from tqdm import tqdm

from pipelines.partitions import city_day_key
from pipelines.simulation.run import SimulationSpec


@dataclass
class PipelineReport:
    runs: int = 0
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    """Blocking (ERROR) checks that failed: the mart was kept and downstream skipped."""
    warnings: list[str] = field(default_factory=list)
    """Non-blocking (WARN) checks that failed: worth a look, nothing was stopped."""

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_checks


def execute(
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    report: PipelineReport,
    partition_key: str | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
    log_level: str = "WARNING",
) -> None:
    """Run ``job`` (or the ``asset_selection`` subset of it) and record failures and failed checks."""
    result = defs.resolve_job_def(job).execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
        asset_selection=asset_selection,
    )
    report.runs += 1
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            message = evaluation.metadata.get("message")
            text = message.value if message is not None else ""
            line = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {text}"
            blocking = evaluation.severity == dg.AssetCheckSeverity.ERROR
            (report.failed_checks if blocking else report.warnings).append(line)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data is not None:
                error = event.step_failure_data.error
                if error is not None and error.cause is not None:  # the user's exception, not the wrapper
                    error = error.cause
                report.failures.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
        if not report.failures:
            report.failures.append(f"run of {job} failed")


def run_pipeline(
    defs: dg.Definitions,
    spec: SimulationSpec,
    instance: dg.DagsterInstance,
    simulate: bool = True,
    progress: bool = False,
    train: bool = False,
) -> PipelineReport:
    """Simulate ``spec`` through the partitioned assets, then refresh extracts, staging and marts;
    with ``train``, go on to the ML stage (offline features, training and registration, online store)."""
    report = PipelineReport()
    steps = len(spec.cities) * (spec.days + 1) if simulate else 0
    with tqdm(total=steps + 1 + int(train), desc="materialising", unit="run", disable=not progress) as bar:
        if simulate:
            for city_id in spec.cities:
                execute(defs, "simulate_entities", instance, report, city_id)
                bar.update(1)
                for day in spec.day_list:
                    execute(defs, "simulate_day", instance, report, str(city_day_key(city_id, day)))
                    bar.update(1)
        if not report.failures:
            bar.set_postfix(stage="staging and marts")
            execute(defs, "refresh", instance, report, None)
        bar.update(1)
        if train and not report.failures and not report.failed_checks:
            bar.set_postfix(stage="features, training, online store")
            execute(defs, "ml", instance, report, None)
            bar.update(1)
    return report
