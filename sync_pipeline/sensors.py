"""Sensors: the tenants-file sensor keeps the tenant partitions in step with the file.

Adding a tenant is an edit of the tenants file, not a code change: within a minute the
sensor adds its partition (and removes the partition of a tenant that left the file).
A file that cannot be read or validated changes nothing: the sensor skips with the
file's one-line error, so a typo never removes every tenant.

The orphaned-runs sensor (G13) marks failed a run whose process is gone (``kill -9``, power
loss): its tenant lease expired without renewal, or its CLI process on this host died. So
it no longer shows as running, the schedules (which skip a tenant whose run is going)
sync the tenant again, and its pool slots are freed. It also releases leases still held
by runs that are over (terminated from the UI).

Two run-failure sensors: ``failed_runs_recorded`` gives every failed run its ``sync.runs``
row (G10), ``failing_tenants`` flags a tenant whose runs keep failing.
"""

from collections.abc import Iterable

import dagster as dg

from sync_pipeline import lease
from sync_pipeline.assets.apply.exports import export_dir, export_parquet
from sync_pipeline.assets.apply.runs import record_failed_runs
from sync_pipeline.jobs import sync_job
from sync_pipeline.ops.store import brief_connection
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.schedules import FAILING_STREAK, PARTITION_TAG, failing_streak
from sync_pipeline.tenants import TenantConfigError, TenantsResource
from sync_pipeline.webhooks.sensor import webhook_events_sensor

PARTITIONS_NAME = tenant_partitions.name


def partition_changes(
    existing: Iterable[str], wanted: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(keys to add, keys to remove) to turn ``existing`` into ``wanted``."""
    have, want = set(existing), set(wanted)
    return sorted(want - have), sorted(have - want)


def ensure_tenant_partitions(instance: dg.DagsterInstance, tenant_keys: Iterable[str]) -> list[str]:
    """Add the partitions of ``tenant_keys`` that do not exist yet; returns those added.

    For callers that launch a run for a tenant right away (the CLI) and cannot wait
    for the sensor's next tick. Never removes a partition.
    """
    to_add, _ = partition_changes(instance.get_dynamic_partitions(PARTITIONS_NAME), tenant_keys)
    if to_add:
        instance.add_dynamic_partitions(PARTITIONS_NAME, to_add)
    return to_add


@dg.sensor(
    name="tenant_partitions_sensor",
    description="Keeps the `tenants` partitions equal to the tenants in the tenants file.",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def tenant_partitions_sensor(context: dg.SensorEvaluationContext, tenants: TenantsResource):
    try:
        wanted = tenants.load()
    except TenantConfigError as err:
        return dg.SkipReason(f"tenants file not usable, partitions unchanged: {err}")
    to_add, to_remove = partition_changes(
        context.instance.get_dynamic_partitions(PARTITIONS_NAME), wanted
    )
    if not to_add and not to_remove:
        return dg.SkipReason(f"partitions already match the {len(wanted)} tenant(s) in the file")
    requests: list = []
    if to_add:
        requests.append(tenant_partitions.build_add_request(to_add))
        context.log.info(f"adding tenant partitions: {', '.join(to_add)}")
    if to_remove:
        requests.append(tenant_partitions.build_delete_request(to_remove))
        context.log.info(f"removing tenant partitions: {', '.join(to_remove)}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(
    name="orphaned_runs_sensor",
    description="Marks failed the sync runs whose process is gone (their tenant lease expired "
    "without renewal, G13), so the tenant's schedule syncs it again; releases leases of "
    "runs that are over.",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def orphaned_runs_sensor(context: dg.SensorEvaluationContext, duckdb: SyncDuckDB):
    with brief_connection(duckdb) as conn:
        if conn is None:
            return dg.SkipReason("the state store is busy; checked again next tick")
        failed = lease.fail_orphaned_runs(context.instance, conn)
        freed = lease.release_finished(context.instance, conn)
    for run_id in failed:
        context.log.warning(f"run {run_id} marked failed: its process is gone (G13)")
    if not failed and not freed:
        return dg.SkipReason("no orphaned run")
    return dg.SkipReason(
        f"marked failed: {', '.join(failed) or 'none'}; leases released: {', '.join(freed) or 'none'}"
    )


SENSORS: list = [tenant_partitions_sensor, orphaned_runs_sensor]


# -- failed runs: each one recorded in sync.runs (G10) -----------------------------------------
@dg.run_failure_sensor(
    name="failed_runs_recorded",
    monitored_jobs=[sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records each failed sync run in sync.runs (outcome failed, the reason) and "
    "refreshes the tenant's Parquet exports: a run that failed before its apply step (an "
    "extract refused, the DuckDB file held) could not. If the file is held now, the "
    "tenant's next run records it.",
)
def failed_runs_sensor(context: dg.RunFailureSensorContext, duckdb: SyncDuckDB):
    tenant = context.dagster_run.tags.get("dagster/partition")
    if not tenant:
        return dg.SkipReason("a sync run without a tenant partition")
    with brief_connection(duckdb, wait_s=0) as conn:  # one attempt: the daemon must not wait
        if conn is None:
            return dg.SkipReason(
                f"tenant {tenant}: the DuckDB file is held by another process; the tenant's "
                "next run records the failed run in sync.runs"
            )
        recorded = record_failed_runs(conn, context.instance, tenant)
        export_parquet(conn, tenant, export_dir())
    context.log.info(f"tenant {tenant}: {recorded} failed run(s) recorded in sync.runs")
    return None


SENSORS.append(failed_runs_sensor)


# -- tenants whose runs keep failing ---------------------------------------------------------
@dg.run_failure_sensor(
    name="failing_tenants",
    monitored_jobs=[sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Flags a tenant whose sync runs keep failing (also shown by `sync-pipeline "
    "tenants`).",
)
def failing_tenants_sensor(context: dg.RunFailureSensorContext):
    tenant = context.dagster_run.tags.get(PARTITION_TAG, "?")
    streak = failing_streak(context.instance, tenant)
    message = context.failure_event.message or "run failed"
    if streak >= FAILING_STREAK:
        context.log.error(f"tenant {tenant}: {streak} sync runs in a row failed; last: {message}")
    else:
        context.log.warning(f"tenant {tenant}: sync run failed: {message}")


SENSORS.append(failing_tenants_sensor)


# -- webhook deliveries: a debounced run of the tenant they name (issue 15) ----------------------
SENSORS.append(webhook_events_sensor)
