"""The reports: a run's summary, a plan, the error log, the tenants, one record's story.

The report SQL lives here; ``output`` formats it. Each report holds the DuckDB file only for
the moment of its queries (a run's summary waits longer: other tenants' runs hold the file
between their units of work).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync_pipeline import lease
from sync_pipeline.ops import EXIT_OK, OperatorError
from sync_pipeline.ops.instance import dagster_instance
from sync_pipeline.ops.output import format_table, plain_text, write
from sync_pipeline.ops.selection import selected, tenants
from sync_pipeline.ops.store import LOCK_WAIT_S, SUMMARY_LOCK_WAIT_S, dict_rows, open_db
from sync_pipeline.resources.storage import duckdb_path


def run_summary(tenant: str, run_id: str) -> tuple[list[dict], dict | None, dict]:
    """Per-entity counts of the run's operations and errors, its sync.runs row, and how many
    planned operations were not applied: ``review`` (G9), ``held`` (G7)
    and ``held_creates`` (G12)."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        run = dict_rows(
            conn, "SELECT * FROM sync.runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
        )
        started = dict_rows(
            conn,
            "SELECT min(started_at) AS t FROM sync.operations WHERE tenant = ? AND run_id = ?",
            [tenant, run_id],
        )[0]["t"]
        since = run[0]["started_at"] if run else started
        ops = dict_rows(
            conn,
            """
            SELECT entity,
              count(*) FILTER (WHERE operation = 'link' AND state = 'done') AS linked,
              count(*) FILTER (WHERE operation = 'create' AND state = 'done') AS created,
              count(*) FILTER (WHERE operation IN ('update', 'set_number') AND state = 'done')
                AS updated,
              count(*) FILTER (WHERE operation IN ('complete', 'detach', 'delete')
                AND state = 'done') AS "completed/detached",
              count(*) FILTER (WHERE state = 'failed') AS failed
            FROM sync.operations WHERE tenant = ? AND run_id = ? GROUP BY entity
            """,
            [tenant, run_id],
        )
        errs = (
            dict_rows(
                conn,
                """
                SELECT entity,
                  count(*) FILTER (WHERE first_seen_at >= ?) AS errors_opened,
                  count(*) FILTER (WHERE resolved_at >= ?) AS errors_resolved
                FROM sync.errors WHERE tenant = ? GROUP BY entity
                """,
                [since, since, tenant],
            )
            if since is not None
            else []
        )
        not_applied = dict_rows(
            conn,
            """SELECT count(*) FILTER (WHERE held_reason = 'review') AS review,
                      count(*) FILTER (WHERE held_reason NOT IN ('review', 'mass_create'))
                        AS held,
                      count(*) FILTER (WHERE held_reason = 'mass_create') AS held_creates
               FROM sync.plan WHERE tenant = ? AND run_id = ? AND NOT apply""",
            [tenant, run_id],
        )[0]
    by_entity: dict[str, dict] = {}
    for row in [*ops, *errs]:
        entity = row["entity"] or "-"
        by_entity.setdefault(entity, {"tenant": tenant, "entity": entity}).update(
            {k: v for k, v in row.items() if k != "entity"}
        )
    order = {"employee": 0, "customer": 1, "project": 2}
    rows = sorted(by_entity.values(), key=lambda r: (order.get(r["entity"], 9), r["entity"]))
    for row in rows:
        for col in SUMMARY_COLUMNS[2:]:
            row.setdefault(col, 0)
    return rows, (run[0] if run else None), not_applied


SUMMARY_COLUMNS = (
    "tenant",
    "entity",
    "linked",
    "created",
    "updated",
    "completed/detached",
    "failed",
    "errors_opened",
    "errors_resolved",
)


def requests_text(requests: Any) -> str:
    """``{"svenn": {"extract": 3, "apply": 2}, …}`` → ``svenn 5 (extract 3, apply 2), …``."""
    if isinstance(requests, str):
        try:
            requests = json.loads(requests)
        except ValueError:
            return requests
    if not isinstance(requests, dict):
        return "" if requests is None else str(requests)
    parts = []
    for system, value in requests.items():
        if isinstance(value, dict):
            detail = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(
                f"{system} {sum(v for v in value.values() if isinstance(v, int))} ({detail})"
            )
        else:
            parts.append(f"{system} {value}")
    return ", ".join(parts)


PLAN_COLUMNS = (
    "seq",
    "entity",
    "target",
    "operation",
    "label",
    "fields",
    "rule_ids",
    "apply",
    "held_reason",
)


def show_plan(tenant: str, run_id: str, limit: int = 50) -> None:
    """Print the plan of one run: totals, the first operations, and the findings by code."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        totals = dict_rows(
            conn,
            """SELECT entity, target, operation, count(*) AS operations
               FROM sync.plan WHERE tenant = ? AND run_id = ?
               GROUP BY ALL ORDER BY min(seq)""",
            [tenant, run_id],
        )
        ops = dict_rows(
            conn,
            f"""SELECT {", ".join(PLAN_COLUMNS)} FROM sync.plan
                WHERE tenant = ? AND run_id = ? ORDER BY seq LIMIT ?""",
            [tenant, run_id, limit],
        )
        findings = dict_rows(
            conn,
            """SELECT code, severity, rule_id, count(*) AS records, any_value(message) AS message
               FROM sync.findings WHERE tenant = ? AND run_id = ?
               GROUP BY code, severity, rule_id ORDER BY records DESC, code""",
            [tenant, run_id],
        )
    total = sum(r["operations"] for r in totals)
    print(f"\nplan of {tenant}: {total} operations (run {run_id})")
    if totals:
        print(format_table(totals, ("entity", "target", "operation", "operations")))
        print(f"\nfirst {min(limit, total)} operations:")
        print(format_table(ops, PLAN_COLUMNS, max_width=40))
    print(f"\nfindings: {sum(r['records'] for r in findings)}")
    if findings:
        print(format_table(findings, ("code", "severity", "rule_id", "records", "message")))


ERROR_COLUMNS = (
    "tenant",
    "severity",
    "code",
    "entity",
    "svenn_id",
    "tripletex_id",
    "record_label",
    "message",
    "first_seen_at",
    "last_seen_at",
)


def errors(
    tenants_file: str | Path | None,
    tenant: str | None = None,
    *,
    history: bool = False,
    fmt: str = "table",
) -> int:
    """The error log of one tenant or all: open errors, or all of them with ``history``."""
    keys = selected(tenants(tenants_file), tenant)
    where = "tenant IN (SELECT unnest(?))" + ("" if history else " AND resolved_at IS NULL")
    with open_db() as conn:
        rows = dict_rows(
            conn,
            f"""SELECT * FROM sync.errors WHERE {where}
                ORDER BY tenant, CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                         code, entity, record_label""",
            [keys],
        )
    columns = list(ERROR_COLUMNS)
    if history:
        columns.append("resolved_at")
    if fmt != "table":
        columns += ["details", "run_id"]
    for row in rows:
        if isinstance(row.get("details"), str) and fmt == "json":
            with suppress(ValueError):
                row["details"] = json.loads(row["details"])
    write(rows, columns, fmt)
    return EXIT_OK


def last_runs(keys: Sequence[str]) -> dict[str, dict]:
    """Per tenant: the newest sync run in the Dagster instance and the failing streak."""
    from dagster import RunsFilter

    from sync_pipeline.jobs import sync_job
    from sync_pipeline.schedules import PARTITION_TAG, failing_streak

    instance = dagster_instance()
    out = {}
    for key in keys:
        records = instance.get_run_records(
            RunsFilter(job_name=sync_job.name, tags={PARTITION_TAG: key}), limit=1
        )
        record = records[0] if records else None
        out[key] = {
            "run_id": record.dagster_run.run_id if record else None,
            "status": record.dagster_run.status.value.lower() if record else None,
            "at": datetime.fromtimestamp(
                record.start_time or record.create_timestamp.timestamp(), UTC
            )
            if record
            else None,
            "streak": failing_streak(instance, key),
        }
    return out


def tenants_overview(tenants_file: str | Path | None) -> int:
    """Each tenant's mode, last run and outcome, open errors, health and lease."""
    from sync_pipeline.schedules import FAILING_STREAK

    configured = tenants(tenants_file)
    keys = sorted(configured)
    with open_db() as conn:
        runs = {
            r["tenant"]: r
            for r in dict_rows(
                conn,
                """SELECT tenant, run_id, outcome, started_at FROM sync.runs
                   QUALIFY row_number() OVER (PARTITION BY tenant ORDER BY started_at DESC) = 1""",
            )
        }
        open_errors = {
            r["tenant"]: r
            for r in dict_rows(
                conn,
                """SELECT tenant, count(*) FILTER (WHERE severity = 'error') AS e,
                          count(*) FILTER (WHERE severity = 'warning') AS w,
                          count(*) FILTER (WHERE severity = 'info') AS i
                   FROM sync.errors WHERE resolved_at IS NULL GROUP BY tenant""",
            )
        }
        approved = {
            r["tenant"]
            for r in dict_rows(
                conn, "SELECT DISTINCT tenant FROM sync.approvals WHERE action = 'go_live'"
            )
        }
        leases = lease.all_leases(conn)
    dagster_runs = last_runs(keys)
    rows = []
    for key in keys:
        mode = configured[key].mode
        if mode == "review" and key in approved:
            mode = "review→active (approved)"
        last = dagster_runs[key]
        db_run = runs.get(key)
        if last["run_id"] and db_run and db_run["run_id"] == last["run_id"]:
            outcome = db_run["outcome"]
        else:
            outcome = {"failure": "failed"}.get(last["status"] or "", last["status"])
            if outcome is None and db_run:
                outcome = db_run["outcome"]
        at = last["at"] or (db_run or {}).get("started_at")
        errs = open_errors.get(key, {})
        streak = last["streak"]
        rows.append(
            {
                "tenant": key,
                "mode": mode,
                "last_run": at,
                "outcome": outcome or "never run",
                "open_errors": f"{errs.get('e', 0)} errors, {errs.get('w', 0)} warnings, "
                f"{errs.get('i', 0)} info",
                "health": f"FAILING ({streak} runs in a row)" if streak >= FAILING_STREAK else "ok",
                "lease": lease.describe_for_tenants(leases.get(key)),
            }
        )
    print(
        format_table(
            rows,
            ("tenant", "mode", "last_run", "outcome", "open_errors", "health", "lease"),
            max_width=90,
        )
    )
    return EXIT_OK


def explain(
    tenants_file: str | Path | None,
    tenant: str,
    entity: str,
    *,
    svenn_id: int | None = None,
    tripletex_id: int | None = None,
    number: str | None = None,
    fmt: str = "text",
) -> int:
    """Why one record is (not) synced: read-only, the file held only for a few queries."""
    from sync_pipeline import explain as story_of

    key = selected(tenants(tenants_file), tenant)[0]
    query = {"svenn_id": svenn_id, "tripletex_id": tripletex_id, "number": number}
    try:
        with story_of.read_only(duckdb_path(), LOCK_WAIT_S) as conn:
            story = story_of.story(conn, key, entity, **query)
    except story_of.ExplainError as exc:
        raise OperatorError(str(exc)) from None
    if fmt == "json":
        iso = lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)  # noqa: E731
        print(json.dumps(story, default=iso, indent=2, ensure_ascii=False))
    else:
        # records' text is data: no control character reaches the operator's terminal
        print(plain_text(story_of.to_text(story)))
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``errors``, ``tenants`` and ``explain``."""
    text = "the error log (open errors unless --history)"
    p = subparsers.add_parser("errors", help=text, description=text)
    p.add_argument("--tenant", metavar="KEY")
    p.add_argument("--history", action="store_true", help="include resolved errors")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(
        handler=lambda a: errors(a.tenants_file, a.tenant, history=a.history, fmt=a.format)
    )

    text = "each tenant's mode, last run, outcome, open errors and lease"
    p = subparsers.add_parser("tenants", help=text, description=text)
    p.set_defaults(handler=lambda a: tenants_overview(a.tenants_file))

    text = "why one record is (not) synced: its story, newest first"
    p = subparsers.add_parser("explain", help=text, description=text)
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--entity", choices=("project", "customer", "employee"), required=True)
    ids = p.add_mutually_exclusive_group(required=True)
    ids.add_argument("--svenn-id", type=int)
    ids.add_argument("--tripletex-id", type=int)
    ids.add_argument("--number", help="the record's number (the key both systems share)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(
        handler=lambda a: explain(
            a.tenants_file,
            a.tenant,
            a.entity,
            svenn_id=a.svenn_id,
            tripletex_id=a.tripletex_id,
            number=a.number,
            fmt=a.format,
        )
    )
