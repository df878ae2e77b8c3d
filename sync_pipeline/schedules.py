"""Schedules that keep every tenant in sync (the watch on failing tenants is in ``sensors``).

Every 15 minutes an incremental sync of each tenant; nightly at 02:00 Oslo time a
full reconcile (Tripletex recommends a nightly full sync: an incremental extract
cannot see every deletion). One run per tenant partition; a tenant whose last
run is still queued or in progress is skipped, and the instance's run queue
(limit 1 per value of the ``dagster/partition`` tag, see ``ops.instance.DAGSTER_YAML``)
keeps it that way for runs queued at the same moment or launched from the UI. Transient failures are
retried twice with backoff inside the API clients, then once more as a whole
run (``dagster/max_retries``, run retries enabled in the instance).
"""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus

from sync_pipeline.jobs import sync_job
from sync_pipeline.partitions import FULL_EXTRACT_TAG, tenant_partitions
from sync_pipeline.tenants import TenantConfigError, load_tenants

#: Dagster's tag holding a run's partition: the tenant. The run queue allows one run per value.
PARTITION_TAG = "dagster/partition"
TIMEZONE = "Europe/Oslo"
#: Consecutive failed runs from which a tenant is flagged as failing (CLI ``tenants``, sensor).
FAILING_STREAK = 2
#: A run still queued or going (Dagster's own list of these is in a private module).
NOT_FINISHED_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.SUSPENDED,
    DagsterRunStatus.CANCELING,
]
#: Run-level retries for scheduled runs, after the clients' own request retries.
RUN_RETRY_TAGS = {"dagster/max_retries": "1", "dagster/retry_strategy": "FROM_FAILURE"}


def run_tags(tenant: str, *, full: bool, origin: str) -> dict[str, str]:
    """The tags of one sync run besides its partition: extract mode and who started it."""
    tags = {"sync_pipeline/origin": origin}
    if full:
        tags[FULL_EXTRACT_TAG] = "true"
    return tags


def failing_streak(instance: dg.DagsterInstance, tenant: str, limit: int = 10) -> int:
    """How many of the tenant's most recent finished sync runs failed in a row."""
    records = instance.get_run_records(
        dg.RunsFilter(
            job_name=sync_job.name,
            tags={PARTITION_TAG: tenant},
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=limit,
    )
    streak = 0
    for record in records:  # newest first
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        streak += 1
    return streak


def _tenant_run_requests(
    context: dg.ScheduleEvaluationContext, *, full: bool, origin: str
) -> list[dg.RunRequest] | dg.SkipReason:
    """One run request per tenant that is both in the tenants file and a partition."""
    try:
        configured = set(load_tenants())
    except TenantConfigError as exc:
        return dg.SkipReason(f"tenants file unusable: {exc}")
    partitions = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    for key in sorted(configured - partitions):
        context.log.info(f"tenant {key}: not a partition yet (the tenants sensor adds it)")
    requests = []
    for key in sorted(configured & partitions):
        busy = context.instance.get_run_records(
            dg.RunsFilter(tags={PARTITION_TAG: key}, statuses=NOT_FINISHED_STATUSES), limit=1
        )
        if busy:
            context.log.info(f"tenant {key}: run {busy[0].dagster_run.run_id} still going; skipped")
            continue
        streak = failing_streak(context.instance, key)
        if streak >= FAILING_STREAK:
            context.log.warning(f"tenant {key}: the last {streak} sync runs failed")
        requests.append(
            dg.RunRequest(
                partition_key=key,
                tags={**run_tags(key, full=full, origin=origin), **RUN_RETRY_TAGS},
            )
        )
    return requests or dg.SkipReason("no tenant to sync")


@dg.schedule(
    name="incremental_sync_every_15_minutes",
    job=sync_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Incremental sync of every tenant every 15 minutes (one run per tenant).",
)
def incremental_sync_schedule(context: dg.ScheduleEvaluationContext):
    return _tenant_run_requests(context, full=False, origin="schedule:incremental")


@dg.schedule(
    name="nightly_full_reconcile",
    job=sync_job,
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full extract and reconcile of every tenant at 02:00 Oslo time, which also "
    "sees deletions an incremental extract cannot.",
)
def nightly_full_schedule(context: dg.ScheduleEvaluationContext):
    return _tenant_run_requests(context, full=True, origin="schedule:nightly")


SCHEDULES: list = [incremental_sync_schedule, nightly_full_schedule]
