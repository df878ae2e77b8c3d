"""The ``apply`` group: ``sync/links`` (the plan carried out) → ``sync/errors`` (error log,
runs summary, exports, Svenn's error list).

A run where an API was down for every write fails (after recording what it could);
a run where some writes failed succeeds with ``outcome = 'partial'`` in ``sync.runs``
and in the metadata, and the failed records are in the error log.
"""

import time
from collections import Counter
from typing import Any

import dagster as dg

from sync_pipeline.assets.apply.checks import (
    ERRORS_CHECKS,
    LINKS_CHECKS,
    links_checks,
    open_errors_under_threshold,
)
from sync_pipeline.assets.apply.error_log import merge_error_log
from sync_pipeline.assets.apply.executor import ApplyReport, PlanExecutor, load_plan
from sync_pipeline.assets.apply.exports import export_dir, export_parquet
from sync_pipeline.assets.apply.publish import open_errors_for_svenn, publish_open_errors
from sync_pipeline.assets.apply.recovery import recover
from sync_pipeline.assets.apply.runs import (
    extract_requests,
    record_failed_runs,
    run_counts,
    upsert_run,
)
from sync_pipeline.assets.apply.sql import first
from sync_pipeline.assets.keys import ERRORS_KEY, LINKS_KEY, PLAN_KEY
from sync_pipeline.assets.lease import holding, release_at_end
from sync_pipeline.explain import explain_commands_sql
from sync_pipeline.markdown_text import md_table
from sync_pipeline.model import CODES
from sync_pipeline.partitions import FULL_EXTRACT_TAG, tenant_partitions
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.state import preview
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource

PREVIEW_ROWS = 20
#: Cell width of the previews in the UI (records' text is escaped there: data, not markup).
PREVIEW_WIDTH = 120
#: ``sync.runs.outcome`` values, plotted per tenant in the error log's metadata.
RUN_OUTCOMES = ("success", "partial", "failed", "review", "refused")


def plan_review(conn: Any, tenant: str, run_id: str) -> bool:
    """The plan step's G9 decision for this run (``sync.plan_runs``). A run without one has
    no plan of its own to carry out: it fails rather than write on a guess."""
    row = first(
        conn.execute(
            "SELECT review FROM sync.plan_runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
        )
    )
    if row is None:
        raise dg.Failure(
            description=f"No plan of run {run_id} for tenant {tenant}: sync/links carries out "
            "the sync/plan of its own run, so materialize both together."
        )
    return bool(row[0])


def outcome_of(report: ApplyReport) -> str:
    """'failed' when no API write went through because an API was down; else success/partial."""
    if report.api_writes["done"] == 0 and report.unavailable > 0:
        return "failed"
    return "partial" if report.failures else "success"


@dg.asset(
    key=LINKS_KEY,
    deps=[PLAN_KEY],
    check_specs=LINKS_CHECKS,
    partitions_def=tenant_partitions,
    group_name="apply",
    owners=["team:sync"],
    kinds={"duckdb", "python", "svenn", "tripletex"},
    description=(
        "Carries out this run's sync.plan against Svenn and Tripletex in dependency order "
        "(batched /list writes, Idempotency-Key / If-Match on Svenn), through the write-ahead "
        "log sync.operations, after recovering creates a crashed run left unsettled (G4, G5, "
        "G8). Keeps sync.links and their bases true (G6). Review tenants write nothing (G9)."
    ),
)
def applied_links(
    context: dg.AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource
) -> dg.MaterializeResult:
    with duckdb.held_open(), holding(context, duckdb) as held:  # G13: renewed meanwhile
        return _apply(context, duckdb, tenants, held)


def _apply(
    context: dg.AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource, held: Any
) -> dg.MaterializeResult:
    tenant, run_id = context.partition_key, context.run.run_id
    config = tenants.get(tenant)
    started = time.monotonic()
    with duckdb.get_connection() as conn:
        rows = load_plan(conn, tenant, [run_id])
        planned_total = first(
            conn.execute(
                "SELECT count(*) FROM sync.plan WHERE tenant = ? AND run_id = ?", [tenant, run_id]
            )
        )[0]
        review = plan_review(conn, tenant, run_id)
    # G9 is decided by the rules (review mode until an operator's go-live) and recorded with
    # the plan: apply what they marked to apply, nothing else.
    report = ApplyReport()
    recovered: dict[str, int] = {}
    tripletex = config.tripletex_client()
    svenn = config.svenn_client()
    try:
        if not review:
            held.check()  # G13: never write for a run that lost the tenant
            recovered = recover(
                tenant=tenant,
                run_id=run_id,
                connect=duckdb.get_connection,
                tripletex=tripletex,
                svenn=svenn,
                log=context.log,
            )
            executor = PlanExecutor(
                tenant=tenant,
                run_id=run_id,
                connect=duckdb.get_connection,
                tripletex=tripletex,
                svenn=svenn,
                log=context.log,
            )
            held.check()
            report = executor.run(rows)
        requests = {"tripletex": tripletex.requests_made, "svenn": svenn.requests_made}
    finally:
        tripletex.close()
        svenn.close()
    outcome = "review" if review else outcome_of(report)
    duration = time.monotonic() - started
    with duckdb.get_connection() as conn:
        extract = extract_requests(conn, tenant, run_id)
        if not review:
            consume_delete_releases(conn, tenant, run_id)
        upsert_run(
            conn,
            tenant,
            run_id,
            mode="review" if review else "active",
            full_extract=context.run.tags.get(FULL_EXTRACT_TAG) == "true",
            outcome=outcome,
            counts=run_counts(conn, tenant, run_id),
            requests={
                system: {"extract": extract.get(system, 0), "apply": requests[system]}
                for system in ("tripletex", "svenn")
            },
            reason=None if outcome != "failed" else "an API was unavailable for every write",
        )
        active_links = first(
            conn.execute(
                "SELECT count(*) FROM sync.links WHERE tenant = ? AND state = 'active'", [tenant]
            )
        )[0]
        checked = links_checks(conn, tenant, run_id)
    by_type = Counter({f"{e}.{op}": n for (e, op), n in report.operations.items()})
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(int(active_links)),
        "outcome": outcome,
        "planned_rows": dg.MetadataValue.int(int(planned_total)),
        "rows_to_apply": dg.MetadataValue.int(len(rows)),
        "operations_by_type": dg.MetadataValue.json(dict(sorted(by_type.items()))),
        "successes": dg.MetadataValue.int(report.successes),
        "failures": dg.MetadataValue.int(report.failures),
        "skipped": dg.MetadataValue.int(report.states["skipped"]),
        "recovered_creates": dg.MetadataValue.json(recovered),
        "requests_tripletex": dg.MetadataValue.int(requests["tripletex"]),
        "requests_svenn": dg.MetadataValue.int(requests["svenn"]),
        "duration_s": dg.MetadataValue.float(round(duration, 3)),
        "first_errors": dg.MetadataValue.md(
            md_table(
                ["code", "entity", "record", "message"],
                [
                    [f.code, f.entity, f.record_label, f.message]
                    for f in report.findings[:PREVIEW_ROWS]
                ],
                width=PREVIEW_WIDTH,
                empty="_none_",
            )
        ),
    }
    if outcome == "failed":
        finish_error_log(duckdb, tenant, run_id, complete=False)
        raise dg.Failure(
            description=(
                f"Nothing could be written for tenant {tenant}: an API was unavailable "
                f"({report.unavailable} writes). The records are in the error log as "
                "API_UNAVAILABLE and are retried by the next run."
            ),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata, check_results=checked)


def consume_delete_releases(conn: Any, tenant: str, run_id: str) -> None:
    """An operator's release of held deletions (G7) or creates (G12) counts for the run
    that applied it."""
    conn.execute(
        "UPDATE sync.approvals SET consumed_by_run = ? WHERE tenant = ? "
        "AND action IN ('confirm_deletes', 'confirm_creates') AND consumed_by_run IS NULL "
        "AND approved_at <= "
        "(SELECT min(planned_at) FROM sync.plan WHERE tenant = ? AND run_id = ?)",
        [run_id, tenant, tenant, run_id],
    )


def finish_error_log(
    duckdb: SyncDuckDB, tenant: str, run_id: str, *, complete: bool
) -> tuple[int, int, list]:
    """Merge the run's findings, close the runs row and write the Parquet exports."""
    with duckdb.get_connection() as conn:
        opened, resolved = merge_error_log(conn, tenant, run_id, complete=complete)
        upsert_run(conn, tenant, run_id, errors_opened=opened, errors_resolved=resolved)
        conn.execute(
            "UPDATE sync.runs SET finished_at = now(), duration_s = "
            "epoch(now()) - epoch(started_at) WHERE tenant = ? AND run_id = ?",
            [tenant, run_id],
        )
        paths = export_parquet(conn, tenant, export_dir())
    return opened, resolved, paths


@dg.asset(
    key=ERRORS_KEY,
    deps=[LINKS_KEY],
    check_specs=ERRORS_CHECKS,
    partitions_def=tenant_partitions,
    group_name="apply",
    owners=["team:sync"],
    kinds={"duckdb", "python", "svenn", "parquet"},
    description=(
        "The error log analysts query (G10): the run's findings merged into sync.errors (one "
        "open row per tenant, code, entity and record; resolved when no longer seen in a "
        "complete run). Closes the sync.runs row (and records the tenant's earlier failed "
        "runs that have none), writes the open errors, the whole error log and the runs as "
        "Parquet under SYNC_EXPORT_DIR for analysts, and publishes the open errors to Svenn "
        "when they changed."
    ),
)
def error_log(
    context: dg.AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource
) -> dg.MaterializeResult:
    with duckdb.held_open(), holding(context, duckdb):
        result = _error_log(context, duckdb, tenants)
    release_at_end(context, duckdb)  # the run's last step: the tenant is free (G13)
    return result


def _error_log(
    context: dg.AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource
) -> dg.MaterializeResult:
    tenant, run_id = context.partition_key, context.run.run_id
    config = tenants.get(tenant)
    with duckdb.get_connection() as conn:
        # Earlier runs of the tenant that failed before writing their row (G10: every run).
        failed_runs = record_failed_runs(conn, context.instance, tenant)
        row = first(
            conn.execute(
                "SELECT outcome FROM sync.runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
            )
        )
        unavailable = first(
            conn.execute(
                "SELECT count(*) FROM sync.findings WHERE tenant = ? AND run_id = ? "
                "AND code = 'API_UNAVAILABLE'",
                [tenant, run_id],
            )
        )[0]
    complete = row is not None and row[0] != "failed" and unavailable == 0
    opened, resolved, paths = finish_error_log(duckdb, tenant, run_id, complete=complete)
    with duckdb.get_connection() as conn:
        open_errors = open_errors_for_svenn(conn, tenant)
        by_code = dict(
            conn.execute(
                "SELECT code, count(*) FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
                "GROUP BY code ORDER BY code",
                [tenant],
            ).fetchall()
        )
        explain_md = preview(
            conn,
            "SELECT code, severity, entity, record_label AS record, message, command AS explain "
            f"FROM ({explain_commands_sql()})",
            [tenant, PREVIEW_ROWS],
            limit=PREVIEW_ROWS,
            width=PREVIEW_WIDTH,
        )
        outcomes = dict(
            conn.execute(
                "SELECT outcome, count(*) FROM sync.runs WHERE tenant = ? GROUP BY outcome",
                [tenant],
            ).fetchall()
        )
        checked = [open_errors_under_threshold(conn, tenant)]
    published, publish_error, requests = False, None, 0
    if row is not None and row[0] != "review":  # review mode writes nothing to Svenn (G9)
        svenn = config.svenn_client()
        try:
            published, open_errors = publish_open_errors(
                duckdb.get_connection, tenant, run_id, svenn
            )
        except ApiError as err:
            publish_error = str(err)
            context.log.warning(f"Svenn error list not published (retried next run): {err}")
        finally:
            requests = svenn.requests_made
            svenn.close()
    return dg.MaterializeResult(
        check_results=checked,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(open_errors)),
            "errors_opened": dg.MetadataValue.int(opened),
            "errors_resolved": dg.MetadataValue.int(resolved),
            "complete_run": complete,
            "open_by_code": dg.MetadataValue.json(by_code),
            "published_to_svenn": published,
            "requests_svenn": dg.MetadataValue.int(requests),
            "publish_error": publish_error or "",
            "exports": dg.MetadataValue.json([str(p) for p in paths]),
            "failed_runs_recorded": dg.MetadataValue.int(failed_runs),
            "open_errors": dg.MetadataValue.md(
                md_table(
                    ["code", "severity", "entity", "record", "message"],
                    [
                        [e["code"], e["severity"], e["entity"], e["record_label"], e["message"]]
                        for e in open_errors[:PREVIEW_ROWS]
                    ],
                    width=PREVIEW_WIDTH,
                    empty="_none_",
                )
            ),
            # Issue 16: numbers the UI plots over the materialisations (the asset's Plots
            # tab): open errors per code (every code, 0 when none, so a line drops to 0
            # instead of ending) and the tenant's runs so far per outcome.
            **{f"open_errors_{code}": dg.MetadataValue.int(by_code.get(code, 0)) for code in CODES},
            **{
                f"runs_{outcome}": dg.MetadataValue.int(outcomes.get(outcome, 0))
                for outcome in RUN_OUTCOMES
            },
            # Issue 16: the UI operator gets the record's story without reading the schema.
            "explain_open_errors": dg.MetadataValue.md(explain_md),
        },
    )
