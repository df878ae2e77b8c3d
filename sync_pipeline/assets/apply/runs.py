"""The runs summary (``sync.runs``): one row per run of a tenant, whatever its outcome (G10).

The apply step starts the row, the error log finishes it; a run that failed before its
apply step gets its row from the tenant's next run, the CLI or the ``failed_runs`` sensor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.partitions import FULL_EXTRACT_TAG
from sync_pipeline.resources.state import staged_rows, transaction


def upsert_run(conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, **values: Any) -> None:
    """Create or update the run's row (the apply asset starts it, the error log finishes it)."""
    for name in ("counts", "requests"):
        if name in values and values[name] is not None and not isinstance(values[name], str):
            values[name] = json.dumps(values[name], sort_keys=True)
    exists = first(
        conn.execute(
            "SELECT count(*) FROM sync.runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
        )
    )[0]
    if not exists:
        started = first(
            conn.execute(
                "SELECT min(started_at) FROM sync.extracts WHERE tenant = ? AND run_id = ?",
                [tenant, run_id],
            )
        )[0]
        conn.execute(
            "INSERT INTO sync.runs (tenant, run_id, started_at) VALUES (?, ?, coalesce(?, now()))",
            [tenant, run_id, started],
        )
    if values:
        sets = ", ".join(
            f"{k} = CAST(? AS JSON)" if k in ("counts", "requests") else f"{k} = ?" for k in values
        )
        conn.execute(
            f"UPDATE sync.runs SET {sets} WHERE tenant = ? AND run_id = ?",
            [*values.values(), tenant, run_id],
        )


def record_failed_runs(
    conn: duckdb.DuckDBPyConnection, instance: Any, tenant: str, *, limit: int = 20
) -> int:
    """Give the tenant's failed Dagster sync runs their ``sync.runs`` row: outcome
    ``failed`` with the reason from the run's events; returns how many rows it wrote.

    A run that failed before its apply step (an extract refused, the DuckDB file held by
    another process, the process killed) never wrote its row. The CLI calls this right
    after a failed run, the tenant's next run and the ``failed_runs`` sensor call it for
    runs nobody recorded; a row another step started keeps its own reason.
    """
    from dagster import DagsterEventType, RunsFilter
    from dagster._core.storage.dagster_run import DagsterRunStatus

    from sync_pipeline.failures import failure_reason

    records = instance.get_run_records(
        RunsFilter(
            job_name="sync_job",
            tags={"dagster/partition": tenant},
            statuses=[DagsterRunStatus.FAILURE],
        ),
        limit=limit,
    )
    if not records:
        return 0
    recorded = {
        run_id
        for (run_id,) in conn.execute(
            "SELECT run_id FROM sync.runs WHERE tenant = ? AND run_id IN (SELECT unnest(?)) "
            "AND (outcome = 'refused' OR (outcome = 'failed' AND finished_at IS NOT NULL "
            "AND reason IS NOT NULL))",  # a run the lease refused (G13) stays 'refused'
            [tenant, [r.dagster_run.run_id for r in records]],
        ).fetchall()
    }
    failed = [r for r in records if r.dagster_run.run_id not in recorded]
    if not failed:
        return 0
    kinds = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}

    def when(epoch: float | None, fallback: datetime) -> datetime:
        return datetime.fromtimestamp(epoch, UTC) if epoch else fallback.astimezone(UTC)

    rows = {
        "run_id": [r.dagster_run.run_id for r in failed],
        "full_extract": [r.dagster_run.tags.get(FULL_EXTRACT_TAG) == "true" for r in failed],
        "started_at": [when(r.start_time, r.create_timestamp) for r in failed],
        "finished_at": [when(r.end_time, r.update_timestamp) for r in failed],
        "reason": [
            failure_reason(
                e.dagster_event for e in instance.all_logs(r.dagster_run.run_id, of_type=kinds)
            )
            for r in failed
        ],
    }
    with staged_rows(conn, rows) as staged, transaction(conn):
        conn.execute(
            "UPDATE sync.runs AS r SET outcome = 'failed', "
            "reason = CASE WHEN r.outcome = 'failed' THEN coalesce(r.reason, f.reason) "
            "ELSE f.reason END, finished_at = coalesce(r.finished_at, f.finished_at), "
            "duration_s = coalesce(r.duration_s, epoch(f.finished_at) - epoch(r.started_at)) "
            f"FROM {staged} AS f WHERE r.tenant = ? AND r.run_id = f.run_id",
            [tenant],
        )
        conn.execute(
            "INSERT INTO sync.runs (tenant, run_id, full_extract, started_at, finished_at, "
            "outcome, duration_s, reason) SELECT ?, f.run_id, f.full_extract, f.started_at, "
            "f.finished_at, 'failed', epoch(f.finished_at) - epoch(f.started_at), f.reason "
            f"FROM {staged} AS f WHERE NOT EXISTS (SELECT 1 FROM sync.runs AS r "
            "WHERE r.tenant = ? AND r.run_id = f.run_id)",
            [tenant, tenant],
        )
    return len(failed)


def run_counts(conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str) -> dict[str, Any]:
    """Planned rows and applied outcomes per entity and operation (``sync.runs.counts``)."""
    counts: dict[str, Any] = {"planned": {}, "applied": {}}
    for entity, operation, n in conn.execute(
        "SELECT entity, operation, count(*) FROM sync.plan WHERE tenant = ? AND run_id = ? "
        "GROUP BY ALL ORDER BY ALL",
        [tenant, run_id],
    ).fetchall():
        counts["planned"].setdefault(entity, {})[operation] = n
    for entity, operation, state, n in conn.execute(
        "SELECT entity, operation, state, count(*) FROM sync.operations "
        "WHERE tenant = ? AND run_id = ? GROUP BY ALL ORDER BY ALL",
        [tenant, run_id],
    ).fetchall():
        counts["applied"].setdefault(entity, {}).setdefault(operation, {})[state] = n
    return counts


def extract_requests(conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT system, coalesce(sum(requests), 0) FROM sync.extracts "
        "WHERE tenant = ? AND run_id = ? GROUP BY system",
        [tenant, run_id],
    ).fetchall()
    return {system: int(n) for system, n in rows}
