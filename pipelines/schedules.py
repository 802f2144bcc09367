"""The daily schedule: extracts, staging and marts rebuilt after the local night (02:00 UTC)."""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import refresh_job

daily_schedule = dg.ScheduleDefinition(
    name="daily_refresh", job=refresh_job, cron_schedule="0 2 * * *", execution_timezone="UTC"
)
