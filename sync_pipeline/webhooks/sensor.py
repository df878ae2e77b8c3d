"""The webhooks sensor: pending events → one sync run of the affected tenant.

Each tick (every few seconds) it
1. moves the receiver's spool into ``sync.webhook_events`` (:mod:`.spool`);
2. settles the batches handed to runs: a batch whose run (tag ``WEBHOOK_BATCH_TAG``)
   succeeded is consumed; one whose runs all failed or were cancelled — or whose run never
   appeared — is released, so its events go into a later batch: an event is consumed only
   by a run that succeeded after it arrived;
3. per tenant with pending events, once they have settled (no new event for
   ``DEBOUNCE_S``, or the oldest has waited ``MAX_WAIT_S``) and no run of the tenant is
   queued or running and no run holds its lease (G13), claims them as one batch (the run
   key, so a tick evaluated twice never launches twice) and requests an incremental run
   carrying the batch, whose extract reads the changed records by id (:mod:`.targeted`).

A busy state store skips the tick: the events wait in the spool, nothing is lost. The
15-minute and nightly runs stay the safety net for whatever never sent an event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from sync_pipeline import lease
from sync_pipeline.jobs import sync_job
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.schedules import NOT_FINISHED_STATUSES, run_tags
from sync_pipeline.webhooks import spool

WEBHOOK_BATCH_TAG = "sync_pipeline/webhook_batch"
ORIGIN = "sensor:webhooks"
#: Events closer together than this make one run.
DEBOUNCE_S = float(os.environ.get("SYNC_WEBHOOK_DEBOUNCE_S") or 3)
#: ... but no event waits longer than this for its run to be requested.
MAX_WAIT_S = float(os.environ.get("SYNC_WEBHOOK_MAX_WAIT_S") or 20)
#: A claimed batch whose run never showed up (the tick's request was lost) is released.
UNLAUNCHED_S = 120.0

_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class Tick:
    requests: list[dg.RunRequest]
    notes: list[str]


def settle(
    conn: duckdb.DuckDBPyConnection, instance: dg.DagsterInstance, now: datetime
) -> list[str]:
    """Consume the batches whose run succeeded, release those whose run failed or vanished."""
    notes = []
    batches = conn.execute(
        "SELECT batch, min(batched_at) FROM sync.webhook_events"
        " WHERE batch IS NOT NULL AND consumed_at IS NULL GROUP BY batch"
    ).fetchall()
    for batch, batched_at in batches:
        runs = instance.get_run_records(dg.RunsFilter(tags={WEBHOOK_BATCH_TAG: batch}))
        statuses = {r.dagster_run.status for r in runs}
        if dg.DagsterRunStatus.SUCCESS in statuses:
            conn.execute(
                "UPDATE sync.webhook_events SET consumed_at = ? WHERE batch = ? AND consumed_at IS NULL",
                [now, batch],
            )
            notes.append(f"{batch}: run succeeded, events consumed")
        elif runs and statuses <= _FAILED:
            _release(conn, batch)
            notes.append(f"{batch}: run failed, events go into the next run")
        elif (
            not runs
            and batched_at is not None
            and now - batched_at > timedelta(seconds=UNLAUNCHED_S)
        ):
            _release(conn, batch)
            notes.append(f"{batch}: no run was launched, events go into the next run")
    return notes


def _release(conn: duckdb.DuckDBPyConnection, batch: str) -> None:
    conn.execute(
        "UPDATE sync.webhook_events SET batch = NULL, batched_at = NULL"
        " WHERE batch = ? AND consumed_at IS NULL",
        [batch],
    )


def _tenant_busy(
    conn: duckdb.DuckDBPyConnection, instance: dg.DagsterInstance, tenant: str
) -> str | None:
    running = instance.get_run_records(
        dg.RunsFilter(tags={lease.PARTITION_TAG: tenant}, statuses=NOT_FINISHED_STATUSES), limit=1
    )
    if running:
        return f"run {running[0].dagster_run.run_id} is queued or running"
    held = lease.current(conn, tenant)
    if held is not None and held.live:
        return f"its lease is held: {held.describe()}"
    return None


def evaluate(
    conn: duckdb.DuckDBPyConnection,
    instance: dg.DagsterInstance,
    now: datetime | None = None,
    *,
    spool_file: str | None = None,
) -> Tick:
    """One tick of the sensor (its body, testable with any ``now``)."""
    now = now or datetime.now(UTC)
    notes: list[str] = []
    with spool.connect(spool_file) as spooled:
        moved = spool.move_to_store(spooled, conn)
        spool.prune(spooled, conn)
    if moved:
        notes.append(f"{moved} new event(s) from the receiver")
    notes += settle(conn, instance, now)
    partitions = set(instance.get_dynamic_partitions(tenant_partitions.name))
    pending = conn.execute(
        "SELECT tenant, count(*), max(seq), min(received_at), max(received_at)"
        " FROM sync.webhook_events WHERE batch IS NULL AND consumed_at IS NULL"
        " GROUP BY tenant ORDER BY tenant"
    ).fetchall()
    requests = []
    for tenant, count, high, oldest, newest in pending:
        if tenant not in partitions:
            notes.append(f"tenant {tenant}: not a partition (yet); {count} event(s) wait")
            continue
        quiet = now - newest >= timedelta(seconds=DEBOUNCE_S)
        overdue = now - oldest >= timedelta(seconds=MAX_WAIT_S)
        if not (quiet or overdue):
            notes.append(f"tenant {tenant}: {count} event(s), waiting for more (debounce)")
            continue
        busy = _tenant_busy(conn, instance, tenant)
        if busy:
            notes.append(f"tenant {tenant}: {count} event(s) wait, {busy}")
            continue
        batch = f"webhooks-{tenant}-{high}-{int(now.timestamp())}"  # a retry needs a new key
        conn.execute(
            "UPDATE sync.webhook_events SET batch = ?, batched_at = ?"
            " WHERE tenant = ? AND batch IS NULL AND consumed_at IS NULL AND seq <= ?",
            [batch, now, tenant, high],
        )
        requests.append(
            dg.RunRequest(
                run_key=batch,
                partition_key=tenant,
                tags={**run_tags(tenant, full=False, origin=ORIGIN), WEBHOOK_BATCH_TAG: batch},
            )
        )
        notes.append(f"tenant {tenant}: run requested for {count} event(s) ({batch})")
    return Tick(requests, notes)


@dg.sensor(
    name="webhook_events_sensor",
    job=sync_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns webhook events from Tripletex and Svenn into an incremental run of the "
    "tenant (debounced, one run per tenant); the events are consumed when that run succeeds.",
)
def webhook_events_sensor(context: dg.SensorEvaluationContext, duckdb: SyncDuckDB):
    from sync_pipeline.sensors import brief_connection

    with brief_connection(duckdb) as conn:
        if conn is None:
            return dg.SkipReason("the state store is busy; the events wait in the spool")
        tick = evaluate(conn, context.instance)
    for note in tick.notes:
        context.log.info(note)
    if tick.requests:
        return tick.requests
    return dg.SkipReason("; ".join(tick.notes) or "no webhook events")
