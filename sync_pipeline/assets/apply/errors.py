"""The error log (``sync.errors``), the runs summary (``sync.runs``), their Parquet
exports, and publishing the open errors to Svenn (G10).

``sync.errors`` is merged set-based from the run's ``sync.findings``: one open row per
(tenant, code, entity, record); seen again, ``last_seen_at`` moves and message/details
refresh; not seen in a complete run, ``resolved_at`` is set. Rows are never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.model import PLURAL
from sync_pipeline.partitions import FULL_EXTRACT_TAG

EXPORT_DIR_ENV = "SYNC_EXPORT_DIR"
DEFAULT_EXPORT_DIR = "data/exports"


def export_dir() -> Path:
    """``$SYNC_EXPORT_DIR`` or ``data/exports``."""
    return Path(os.environ.get(EXPORT_DIR_ENV) or DEFAULT_EXPORT_DIR)


@dataclass
class Finding:
    """One ``sync.findings`` row."""

    tenant: str
    run_id: str
    entity: str | None
    side: str | None
    svenn_id: int | None
    tripletex_id: int | None
    record_label: str | None
    code: str
    severity: str
    rule_id: str | None
    message: str
    details: dict[str, Any] | None


def insert_findings(conn: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    if not findings:
        return
    frame = pd.DataFrame(
        {
            "tenant": [f.tenant for f in findings],
            "run_id": [f.run_id for f in findings],
            "entity": [f.entity for f in findings],
            "side": [f.side for f in findings],
            "svenn_id": pd.array([f.svenn_id for f in findings], dtype="Int64"),
            "tripletex_id": pd.array([f.tripletex_id for f in findings], dtype="Int64"),
            "record_label": [f.record_label for f in findings],
            "code": [f.code for f in findings],
            "severity": [f.severity for f in findings],
            "rule_id": [f.rule_id for f in findings],
            "message": [f.message for f in findings],
            "details": [
                json.dumps(f.details, ensure_ascii=False, default=str) if f.details else None
                for f in findings
            ],
        }
    )
    conn.register("_new_findings", frame)
    try:
        conn.execute(
            "INSERT INTO sync.findings SELECT tenant, run_id, entity, side, svenn_id, "
            "tripletex_id, record_label, code, severity, rule_id, message, "
            "CAST(details AS JSON) FROM _new_findings"
        )
    finally:
        conn.unregister("_new_findings")


#: An open error and a finding are about the same record with the same code. An error
#: logged while only one id was known is the same record once the finding also names the
#: linked id (G10: both ids where a link exists), so it keeps its first_seen_at.
_SAME_RECORD = (
    "e.code = f.code AND e.entity IS NOT DISTINCT FROM f.entity "
    "AND ((e.svenn_id IS NOT DISTINCT FROM f.svenn_id "
    "AND e.tripletex_id IS NOT DISTINCT FROM f.tripletex_id) "
    "OR (e.tripletex_id IS NULL AND e.svenn_id = f.svenn_id) "
    "OR (e.svenn_id IS NULL AND e.tripletex_id = f.tripletex_id))"
)


def merge_error_log(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, *, complete: bool
) -> tuple[int, int]:
    """Fold the run's findings into ``sync.errors``; returns (opened, resolved).

    ``complete`` is False when part of the run could not be evaluated (an API was
    down): then nothing is resolved, since an unseen error may just be unchecked.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _run_findings AS "
            "SELECT code, entity, svenn_id, tripletex_id, "
            "any_value(severity) AS severity, "
            "any_value(record_label) AS record_label, "
            "string_agg(DISTINCT message, ' | ') AS message, "
            "any_value(details) AS details "
            "FROM sync.findings WHERE tenant = ? AND run_id = ? "
            "GROUP BY code, entity, svenn_id, tripletex_id",
            [tenant, run_id],
        )
        conn.execute(
            "UPDATE sync.errors AS e SET last_seen_at = now(), severity = f.severity, "
            "message = f.message, details = f.details, "
            "svenn_id = coalesce(e.svenn_id, f.svenn_id), "
            "tripletex_id = coalesce(e.tripletex_id, f.tripletex_id), "
            "record_label = coalesce(f.record_label, e.record_label), run_id = ? "
            f"FROM _run_findings AS f WHERE e.tenant = ? AND e.resolved_at IS NULL AND {_SAME_RECORD}",
            [run_id, tenant],
        )
        opened = first(
            conn.execute(
                "INSERT INTO sync.errors (tenant, code, severity, entity, svenn_id, tripletex_id, "
                "record_label, message, details, first_seen_at, last_seen_at, resolved_at, run_id) "
                "SELECT ?, f.code, f.severity, f.entity, f.svenn_id, f.tripletex_id, "
                "f.record_label, f.message, f.details, now(), now(), NULL, ? "
                "FROM _run_findings AS f WHERE NOT EXISTS (SELECT 1 FROM sync.errors AS e "
                f"WHERE e.tenant = ? AND e.resolved_at IS NULL AND {_SAME_RECORD})",
                [tenant, run_id, tenant],
            )
        )[0]
        resolved = 0
        if complete:
            resolved = first(
                conn.execute(
                    "UPDATE sync.errors AS e SET resolved_at = now(), run_id = ? "
                    "WHERE e.tenant = ? AND e.resolved_at IS NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM _run_findings AS f WHERE {_SAME_RECORD})",
                    [run_id, tenant],
                )
            )[0]
        conn.execute("DROP TABLE _run_findings")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return int(opened), int(resolved)


# -- sync.runs ------------------------------------------------------------------------------
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

    frame = pd.DataFrame(
        {
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
    )
    conn.register("_failed_runs", frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(
            "UPDATE sync.runs AS r SET outcome = 'failed', "
            "reason = CASE WHEN r.outcome = 'failed' THEN coalesce(r.reason, f.reason) "
            "ELSE f.reason END, finished_at = coalesce(r.finished_at, f.finished_at), "
            "duration_s = coalesce(r.duration_s, epoch(f.finished_at) - epoch(r.started_at)) "
            "FROM _failed_runs AS f WHERE r.tenant = ? AND r.run_id = f.run_id",
            [tenant],
        )
        conn.execute(
            "INSERT INTO sync.runs (tenant, run_id, full_extract, started_at, finished_at, "
            "outcome, duration_s, reason) SELECT ?, f.run_id, f.full_extract, f.started_at, "
            "f.finished_at, 'failed', epoch(f.finished_at) - epoch(f.started_at), f.reason "
            "FROM _failed_runs AS f WHERE NOT EXISTS (SELECT 1 FROM sync.runs AS r "
            "WHERE r.tenant = ? AND r.run_id = f.run_id)",
            [tenant, tenant],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_failed_runs")
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


# -- exports ---------------------------------------------------------------------------------
def _copy_parquet(conn: duckdb.DuckDBPyConnection, query: str, params: list, path: Path) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file, and never
    blocks one: readers keep the file they opened. The path goes through the relation API,
    not into SQL text (a directory with a quote in it must not break or change the query)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        conn.sql(query, params=params).write_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_parquet(conn: duckdb.DuckDBPyConnection, tenant: str, directory: Path) -> list[Path]:
    """``open_errors/``, ``runs/``, ``errors/`` (the whole log, resolved rows included),
    ``eligibility_checks/`` and ``matches/`` as ``tenant=<t>/data.parquet``: what analysts read instead of the live DuckDB file, which
    any open session (even read-only) would hold against the pipeline's writes."""
    written = []
    for name, query in (
        (
            "open_errors",
            "SELECT * EXCLUDE (tenant) FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
            "ORDER BY severity, code, entity, record_label",
        ),
        ("runs", "SELECT * EXCLUDE (tenant) FROM sync.runs WHERE tenant = ? ORDER BY started_at"),
        (
            "errors",
            "SELECT * EXCLUDE (tenant) FROM sync.errors WHERE tenant = ? "
            "ORDER BY first_seen_at, code, entity, record_label",
        ),
        # the design card's frames (G10, G3): which check excluded what, how pairs matched
        (
            "eligibility_checks",
            "SELECT * EXCLUDE (tenant) FROM sync.eligibility_checks WHERE tenant = ? "
            "ORDER BY checked_at, entity, side, id, rule_id",
        ),
        (
            "matches",
            "SELECT * EXCLUDE (tenant) FROM sync.matches WHERE tenant = ? "
            "ORDER BY matched_at, entity, via, key",
        ),
    ):
        path = directory / name / f"tenant={tenant}" / "data.parquet"
        _copy_parquet(conn, query, [tenant], path)
        written.append(path)
    return written


# -- publishing to Svenn (G10) ------------------------------------------------------------------
def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def svenn_record_id(svenn_id: int | None, tripletex_id: int | None) -> int | str | None:
    """The error log's ``record_id`` (an integer or a string, svenn-api.md): the Svenn id as
    an integer, Svenn's own; an id only Tripletex has is a string naming its system
    (``"tripletex:123"``), so it is never taken for a Svenn id."""
    if svenn_id is not None:
        return svenn_id
    return f"tripletex:{tripletex_id}" if tripletex_id is not None else None


def svenn_record_label(
    label: str | None, svenn_id: int | None, tripletex_id: int | None
) -> str | None:
    """The label users see, with each known id and the system it belongs to (G10)."""
    ids = ", ".join(
        f"{system}-ID {value}"
        for system, value in (("Svenn", svenn_id), ("Tripletex", tripletex_id))
        if value is not None
    )
    if not ids:
        return label
    return f"{label} ({ids})" if label else ids


def open_errors_for_svenn(conn: duckdb.DuckDBPyConnection, tenant: str) -> list[dict[str, Any]]:
    """The open errors as Svenn's integration error log takes them (svenn-api.md): its
    fields only; which system an id belongs to is in ``record_id`` and ``record_label``."""
    rows = conn.execute(
        "SELECT code, severity, message, entity, svenn_id, tripletex_id, record_label, "
        "first_seen_at, last_seen_at FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
        "ORDER BY code, entity, record_label, svenn_id, tripletex_id",
        [tenant],
    ).fetchall()
    return [
        {
            "code": code,
            "severity": severity,
            "message": message,
            "entity": PLURAL.get(entity, entity) if entity else None,  # type: ignore[call-overload]
            "record_id": svenn_record_id(svenn_id, tripletex_id),
            "record_label": svenn_record_label(label, svenn_id, tripletex_id),
            "first_seen_at": _rfc3339(first),
            "last_seen_at": _rfc3339(last),
        }
        for code, severity, message, entity, svenn_id, tripletex_id, label, first, last in rows
    ]


def errors_hash(errors: list[dict[str, Any]]) -> str:
    """What users would see change; ``last_seen_at`` alone moving is not a change (G6)."""
    stable = [{k: v for k, v in e.items() if k != "last_seen_at"} for e in errors]
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def last_published_hash(conn: duckdb.DuckDBPyConnection, tenant: str) -> str | None:
    row = first(
        conn.execute(
            "SELECT errors_hash FROM sync.error_publications WHERE tenant = ? "
            "ORDER BY published_at DESC LIMIT 1",
            [tenant],
        )
    )
    return row[0] if row else None


def record_publication(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, digest: str, count: int
) -> None:
    conn.execute(
        "INSERT INTO sync.error_publications VALUES (?, ?, ?, ?, now())",
        [tenant, run_id, digest, count],
    )


def publish_open_errors(
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    tenant: str,
    run_id: str,
    svenn: Any,
) -> tuple[bool, list[dict[str, Any]]]:
    """PUT the open errors to Svenn when they changed since the last publication (G10, G6).

    Returns (published, open errors). An ``ApiError`` propagates; nothing is recorded
    then, so the next run tries again.
    """
    with connect() as conn:
        errors = open_errors_for_svenn(conn, tenant)
        digest = errors_hash(errors)
        if digest == last_published_hash(conn, tenant):
            return False, errors
    svenn.put_errors(errors)
    with connect() as conn:
        record_publication(conn, tenant, run_id, digest, len(errors))
    return True, errors
