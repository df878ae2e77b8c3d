"""The run's plan, findings and conflicts: the rule steps' proposals, ordered and stamped.

``sync.plan`` rows are ordered so dependencies come first (employees, customers,
projects, then members; within a pair: link, set_number, create, update, complete,
delete, detach). In review mode (G9) every row is kept with ``apply = false``; held
mass deletions (G7) and mass creates (G12) likewise, with their ``held_reason``. Plans,
findings and conflicts are kept per run: the apply step reads the rows of its own
``run_id``. ``sync.plan_runs`` records the run's review decision (G9) with the plan, so
the apply step reads it instead of deciding again: ``sync.plan`` and that row are the
whole contract between the rules and apply. ``sync.matches`` keeps the run's matched
frame (its pairs and how they matched) for analysts.
"""

import time
from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from sync_pipeline.assets.extract.snapshot import EXTRACT_FINDING
from sync_pipeline.assets.keys import CONFLICTS_KEY, FINDINGS_KEY, LINKS_KEY, PLAN_KEY
from sync_pipeline.assets.lease import release_at_end, run_includes
from sync_pipeline.assets.rules.step import (
    GROUP,
    KINDS,
    OWNERS,
    bind,
    insert_rows,
    preview_md,
    prune_frame,
    rules_key,
)
from sync_pipeline.model import CODES
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource

_STEPS = [
    rules_key(n) for n in ("eligibility", "pairs", "merge", "deletions", "creates", "members")
]


def g9_review_sql() -> str:
    """G9: a review tenant only plans, until an operator's go-live approval is there."""
    return """
    SELECT $mode = 'review' AND NOT EXISTS (
      SELECT 1 FROM sync.approvals
      WHERE tenant = $tenant AND action = 'go_live' AND consumed_by_run IS NULL)
    """


def plan_sql() -> str:
    return """
    WITH ranked AS (
      SELECT *,
        CASE WHEN step = 'members' THEN 3
             ELSE CASE entity WHEN 'employee' THEN 0 WHEN 'customer' THEN 1 ELSE 2 END END AS entity_rank,
        CASE operation WHEN 'link' THEN 0 WHEN 'set_number' THEN 1 WHEN 'create' THEN 2
             WHEN 'update' THEN 3 WHEN 'complete' THEN 4 WHEN 'delete' THEN 5 ELSE 6 END AS op_rank,
        CASE target WHEN 'tripletex' THEN 0 WHEN 'svenn' THEN 1 ELSE 2 END AS target_rank
      FROM rules.operations WHERE tenant = $tenant
    )
    SELECT $tenant, $run_id,
           CAST(row_number() OVER (ORDER BY entity_rank, coalesce(tripletex_id, -1),
                coalesce(svenn_id, -1), op_rank, target_rank, step) AS INTEGER),
           entity, target, operation, svenn_id, tripletex_id, key, label, payload, fields,
           rule_ids, reason, expected_version, base_after,
           held_reason IS NULL AND NOT $review,
           CASE WHEN held_reason IS NOT NULL THEN held_reason WHEN $review THEN 'review' END,
           $planned_at
    FROM ranked
    """


def _codes_sql() -> str:
    rows = ", ".join(
        "(" + ", ".join(_quote(v) for v in (c.code, c.severity, c.rule_id, c.message)) + ")"
        for c in CODES.values()
    )
    return f"(VALUES {rows}) AS codes(code, severity, rule_id, message)"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def findings_sql() -> str:
    """G10: each proposed finding with its code's severity, rule id and Norwegian message;
    a record that is linked (or matched in this plan) is named by both ids, whichever
    side's rule found it."""
    return f"""
    SELECT f.tenant, $run_id, f.entity, f.side, coalesce(f.svenn_id, p.svenn_id),
           coalesce(f.tripletex_id, p.tripletex_id), f.record_label,
           f.code, codes.severity, codes.rule_id, codes.message, f.details
    FROM rules.findings f JOIN {_codes_sql()} USING (code)
    LEFT JOIN rules.pairs p ON p.tenant = f.tenant AND p.entity = f.entity
      AND p.kind IN ('linked', 'matched')
      AND ((f.tripletex_id IS NULL AND p.svenn_id = f.svenn_id)
           OR (f.svenn_id IS NULL AND p.tripletex_id = f.tripletex_id))
    WHERE f.tenant = $tenant
    ORDER BY f.entity, f.code, 5, 6
    """


def g3_matches_sql() -> str:
    """The design card's matched frame: every pair of the run and how it matched — an
    active link, or a new match by key or e-mail (G3)."""
    return """
    SELECT tenant, $run_id, entity, svenn_id, tripletex_id, key,
           CASE WHEN kind = 'linked' THEN 'linked' ELSE coalesce(via, 'key') END, kind, origin,
           $planned_at
    FROM rules.pairs
    WHERE tenant = $tenant AND kind IN ('linked', 'matched', 'matched_deleted')
    """


def conflicts_sql() -> str:
    return """
    SELECT tenant, $run_id, entity, svenn_id, tripletex_id, field, base_value, svenn_value,
           tripletex_value, winner, svenn_modified_at, tripletex_modified_at, $planned_at
    FROM rules.conflicts WHERE tenant = $tenant
    """


@multi_asset(
    specs=[
        AssetSpec(
            PLAN_KEY,
            deps=_STEPS,
            description="The run's plan: one row per operation with the exact body, ordered "
            "dependencies first; apply = false in review mode (G9) or when held (G7, G12).",
            group_name=GROUP,
            owners=OWNERS,
            kinds=KINDS,
        ),
        AssetSpec(
            FINDINGS_KEY,
            deps=_STEPS,
            description="The run's findings: records not (fully) synced and why (G10).",
            group_name=GROUP,
            owners=OWNERS,
            kinds=KINDS,
        ),
        AssetSpec(
            CONFLICTS_KEY,
            deps=_STEPS,
            description="The run's edit conflicts with base, both values and the winner (G2).",
            group_name=GROUP,
            owners=OWNERS,
            kinds=KINDS,
        ),
    ],
    partitions_def=tenant_partitions,
    name="sync_plan",
)
def sync_plan(context: AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource):
    started = time.perf_counter()
    tenant, run_id = context.partition_key, context.run.run_id
    config = tenants.get(tenant)
    params = {
        "tenant": tenant,
        "run_id": run_id,
        "mode": config.mode,
        "planned_at": datetime.now(UTC),
    }
    with duckdb.get_connection() as conn:
        review = bool(conn.execute(g9_review_sql(), bind(g9_review_sql(), params)).fetchone()[0])
        params["review"] = review
        rows = {}
        with transaction(conn):
            for table, sql in (
                ("sync.plan", plan_sql()),
                ("sync.findings", findings_sql()),
                ("sync.conflicts", conflicts_sql()),
                ("sync.matches", g3_matches_sql()),
            ):
                # The findings the run's extract recorded (a targeted read's
                # DELETION_NOT_CONFIRMED) stay: the rules never see them again.
                keep = (
                    " AND coalesce(json_extract_string(details, '$.found_by'), '') <> ?"
                    if table == "sync.findings"
                    else ""
                )
                conn.execute(
                    f"DELETE FROM {table} WHERE tenant = ? AND run_id = ?{keep}",
                    [tenant, run_id, *([EXTRACT_FINDING] if keep else [])],
                )
                rows[table] = insert_rows(conn, table, sql, params)
            prune_frame(conn, "sync.matches", tenant, "matched_at")
            # G9: the decision travels with the plan; apply reads it, never re-decides.
            conn.execute(
                "DELETE FROM sync.plan_runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
            )
            conn.execute(
                "INSERT INTO sync.plan_runs (tenant, run_id, review, planned_at) "
                "VALUES (?, ?, ?, ?)",
                [tenant, run_id, review, params["planned_at"]],
            )
        run = {"tenant": tenant, "run_id": run_id}
        plan_md = preview_md(
            conn,
            "SELECT entity, target, operation, apply, held_reason, count(*) AS operations "
            "FROM sync.plan WHERE tenant = $tenant AND run_id = $run_id GROUP BY ALL ORDER BY ALL",
            run,
        )
        findings_md = preview_md(
            conn,
            "SELECT code, severity, entity, count(*) AS records FROM sync.findings "
            "WHERE tenant = $tenant AND run_id = $run_id GROUP BY ALL ORDER BY ALL",
            run,
        )
        conflicts_md = preview_md(
            conn,
            "SELECT entity, field, winner, count(*) AS conflicts FROM sync.conflicts "
            "WHERE tenant = $tenant AND run_id = $run_id GROUP BY ALL ORDER BY ALL",
            run,
        )
    if not run_includes(context, LINKS_KEY):  # a plan-only run ends here (G9, G13)
        release_at_end(context, duckdb)
    duration = MetadataValue.float(round(time.perf_counter() - started, 3))
    context.log.info("plan for %s (review=%s): %s", tenant, review, rows)
    for key, table, md in (
        (PLAN_KEY, "sync.plan", plan_md),
        (FINDINGS_KEY, "sync.findings", findings_md),
        (CONFLICTS_KEY, "sync.conflicts", conflicts_md),
    ):
        yield MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": rows[table],
                "review_mode": review,
                "requests_made": 0,
                "duration_s": duration,
                "preview": md,
            },
        )
