"""``run`` and ``plan``: the Dagster jobs executed in this process, in the persistent instance.

They are the same jobs the UI and the schedules run, so every run shows in the UI. A run
another live run refuses (G13) or the binding check refuses (G11) is exit code 2 with the
reason; a failed run is exit code 1 with its reason, and gets its ``sync.runs`` row now.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from contextlib import suppress
from pathlib import Path

from sync_pipeline import lease
from sync_pipeline.failures import failure_reason
from sync_pipeline.ops import EXIT_FAILED, EXIT_OK, EXIT_USAGE, OperatorError, TenantBusy
from sync_pipeline.ops.instance import dagster_instance, refuse_if_busy
from sync_pipeline.ops.output import format_table
from sync_pipeline.ops.progress import progress_logger_def
from sync_pipeline.ops.reports import SUMMARY_COLUMNS, requests_text, run_summary, show_plan
from sync_pipeline.ops.selection import selected, tenants
from sync_pipeline.ops.store import SUMMARY_LOCK_WAIT_S, dict_rows, open_db


def execute(
    job_name: str,
    tenant: str,
    *,
    full: bool,
    tenants_file: str | Path | None = None,
    origin: str = "cli",
):
    """Run one job for one tenant in this process, in the persistent instance, with progress;
    the run's ``TenantsResource`` reads ``tenants_file``."""
    from sync_pipeline.definitions import build_defs
    from sync_pipeline.schedules import run_tags
    from sync_pipeline.sensors import ensure_tenant_partitions

    instance = dagster_instance()
    ensure_tenant_partitions(instance, [tenant])
    refuse_if_busy(instance, tenant)
    defs = build_defs(tenants_file=tenants_file)
    job = defs.resolve_job_def(job_name).with_logger_defs({"progress": progress_logger_def()})
    tags = {
        **run_tags(tenant, full=full, origin=origin),
        lease.PID_TAG: str(os.getpid()),
        lease.HOST_TAG: socket.gethostname(),
    }
    try:
        return job.execute_in_process(
            instance=instance,
            partition_key=tenant,
            tags=tags,
            run_config={"loggers": {"progress": {}}},
            raise_on_error=False,
        )
    finally:  # whatever ended the run (Ctrl-C too), this process holds the tenant no more
        with suppress(OperatorError), open_db(SUMMARY_LOCK_WAIT_S) as conn:
            lease.release_holder(conn, tenant, lease.holder_id())


def _refusal(tenant: str, run_id: str) -> str | None:
    """The reason a run was refused at its first step (G13), or None."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        found = dict_rows(
            conn,
            "SELECT reason FROM sync.runs WHERE tenant = ? AND run_id = ? AND outcome = 'refused'",
            [tenant, run_id],
        )
    return found[0]["reason"] if found else None


def binding_refusal(result) -> str | None:
    """The reason a run was refused by the binding check (G11), or None if it was not.

    Read from the run's events: the check fails its step with a ``Failure`` whose
    description is the one-line reason (any other error of that step is an ordinary
    failure, e.g. rejected credentials)."""
    from sync_pipeline.assets.extract.binding import BINDING_KEY

    step = BINDING_KEY.to_python_identifier()
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key == step:
            failure = event.event_specific_data.user_failure_data
            if failure is not None and failure.description:
                return failure.description
    return None


def _check_db_available() -> None:
    with open_db():
        pass


def _record_failed_run(tenant: str) -> list[str]:
    """A run that failed before its apply step wrote no ``sync.runs`` row: write it now
    (outcome failed, the reason) and refresh the tenant's Parquet exports. If the database
    stays locked, the tenant's next run records it; returns that note, if any."""
    from sync_pipeline.assets.apply.exports import export_dir, export_parquet
    from sync_pipeline.assets.apply.runs import record_failed_runs

    try:
        with open_db() as conn:
            record_failed_runs(conn, dagster_instance(), tenant)
            export_parquet(conn, tenant, export_dir())
    except OperatorError as exc:
        return [f"{tenant}: the failed run is recorded in sync.runs by the next run ({exc})"]
    return []


def run(
    tenants_file: str | Path | None,
    tenant: str | None,
    *,
    all_tenants: bool = False,
    full: bool = False,
) -> int:
    """Sync one tenant (or all), print each run's outcome and the per-entity summary."""
    configured = tenants(tenants_file)
    if not all_tenants and not tenant:
        raise OperatorError("name a tenant with --tenant KEY, or sync every tenant with --all")
    keys = selected(configured, tenant)
    _check_db_available()
    summaries: list[dict] = []
    failures: list[str] = []
    refused: list[str] = []
    notes: list[str] = []
    for key in keys:
        print(f"sync {key} ({'full' if full else 'incremental'} extract)", flush=True)
        try:
            result = execute("sync_job", key, full=full, tenants_file=tenants_file)
        except TenantBusy as busy:
            refused.append(str(busy))
            continue
        if not result.success:
            busy = _refusal(key, result.run_id)  # G13: another run holds the tenant
            moved = None if busy else binding_refusal(result)  # G11: another company
            if busy:
                refused.append(f"tenant '{key}' refused: {busy}")
            elif moved:
                refused.append(moved)
            else:
                failures.append(f"{key}: {failure_reason(result.all_events)}")
                notes += _record_failed_run(key)
            continue
        summary, run_row, not_applied = run_summary(key, result.run_id)
        summaries += summary
        outcome = (run_row or {}).get("outcome") or "success"
        details = [f"outcome {outcome}", f"run {result.run_id}"]
        if run_row and run_row.get("requests") is not None:
            details.append(f"requests: {requests_text(run_row['requests'])}")
        print(f"{key}: " + "; ".join(details))
        if not_applied["held"]:
            print(
                f"{key}: {not_applied['held']} deletions held by the mass-deletion guard (G7); "
                f"release them with `sync-pipeline confirm-deletes --tenant {key}`"
            )
        if not_applied["held_creates"]:
            print(
                f"{key}: {not_applied['held_creates']} creates held by the mass-create guard "
                f"(G12); release them with `sync-pipeline confirm-creates --tenant {key}`"
            )
        if not_applied["review"]:
            print(
                f"{key}: review mode, {not_applied['review']} planned operations not applied "
                f"(inspect with `sync-pipeline plan --tenant {key}`, go live with "
                f"`sync-pipeline approve --tenant {key}`)"
            )
        if outcome == "failed":
            failures.append(f"{key}: {(run_row or {}).get('reason') or 'the run reported failure'}")
    if summaries:
        print()
        print(format_table(summaries, SUMMARY_COLUMNS))
    for failure in failures:
        print(f"sync-pipeline: run failed: {failure}", file=sys.stderr)
    for refusal in refused:
        print(f"sync-pipeline: {refusal}", file=sys.stderr)
    for note in notes:
        print(f"sync-pipeline: {note}", file=sys.stderr)
    return EXIT_USAGE if refused else EXIT_FAILED if failures else EXIT_OK


def plan(
    tenants_file: str | Path | None, tenant: str, *, full: bool = False, limit: int = 50
) -> int:
    """Compute the tenant's plan without writing to either system (G9) and print it."""
    key = selected(tenants(tenants_file), tenant)[0]
    _check_db_available()
    print(f"plan {key} (nothing is written to Svenn or Tripletex)", flush=True)
    result = execute("plan_job", key, full=full, tenants_file=tenants_file)
    refusal = None if result.success else binding_refusal(result)
    if refusal:
        raise OperatorError(refusal)
    if not result.success:
        reason = _refusal(key, result.run_id)
        if reason:
            raise TenantBusy(f"tenant '{key}' refused: {reason}")
        print(
            f"sync-pipeline: plan failed: {key}: {failure_reason(result.all_events)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    show_plan(key, result.run_id, limit=limit)
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``run`` and ``plan``."""
    text = "sync one tenant or all of them (recorded in the Dagster UI)"
    p = subparsers.add_parser("run", help=text, description=text)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tenant", metavar="KEY")
    which.add_argument("--all", action="store_true", help="every tenant of the tenants file")
    p.add_argument("--full", action="store_true", help="full extract instead of incremental")
    p.set_defaults(handler=lambda a: run(a.tenants_file, a.tenant, all_tenants=a.all, full=a.full))

    text = "compute and show a tenant's plan without writing (G9)"
    p = subparsers.add_parser("plan", help=text, description=text)
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--full", action="store_true", help="full extract instead of incremental")
    p.add_argument("--limit", type=int, default=50, help="operations to list (default 50)")
    p.set_defaults(handler=lambda a: plan(a.tenants_file, a.tenant, full=a.full, limit=a.limit))
