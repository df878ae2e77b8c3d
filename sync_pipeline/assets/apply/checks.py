"""Asset checks of the apply step, per tenant partition (visible in the Dagster UI)."""

import os

import dagster as dg

from sync_pipeline.assets.apply.assets import ERRORS_KEY, LINKS_KEY
from sync_pipeline.assets.apply.sql import first
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB

#: Open errors per tenant above which the error-count check warns (``SYNC_ERROR_THRESHOLD``).
DEFAULT_ERROR_THRESHOLD = 50


@dg.asset_check(
    asset=LINKS_KEY,
    partitions_def=tenant_partitions,
    blocking=True,
    description="No Svenn or Tripletex id is in two active links (G5: no duplicates).",
)
def no_id_in_two_active_links(
    context: dg.AssetCheckExecutionContext, duckdb: SyncDuckDB
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        rows = conn.execute(
            "SELECT entity, side, id, n FROM ("
            " SELECT entity, 'svenn' AS side, svenn_id AS id, count(*) AS n FROM sync.links"
            " WHERE tenant = ? AND state = 'active' AND svenn_id IS NOT NULL GROUP BY ALL"
            " UNION ALL"
            " SELECT entity, 'tripletex', tripletex_id, count(*) FROM sync.links"
            " WHERE tenant = ? AND state = 'active' AND tripletex_id IS NOT NULL GROUP BY ALL"
            ") WHERE n > 1 ORDER BY ALL LIMIT 20",
            [context.partition_key, context.partition_key],
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not rows,
        metadata={"duplicates": dg.MetadataValue.json([list(map(str, r)) for r in rows])},
    )


@dg.asset_check(
    asset=LINKS_KEY,
    partitions_def=tenant_partitions,
    description="Every create this run applied has an active or detached link to its record (G4).",
)
def every_applied_create_has_a_link(
    context: dg.AssetCheckExecutionContext, duckdb: SyncDuckDB
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        missing = conn.execute(
            " UNION ALL ".join(
                "SELECT o.entity, o.target, o.seq, o.result_id FROM sync.operations AS o "
                "WHERE o.tenant = $tenant AND o.run_id = $run_id AND o.operation = 'create' "
                f"AND o.state = 'done' AND o.target = '{target}' AND NOT EXISTS ("
                " SELECT 1 FROM sync.links AS l WHERE l.tenant = o.tenant AND "
                f" l.entity = o.entity AND l.{target}_id = o.result_id)"
                for target in ("svenn", "tripletex")
            )
            + " ORDER BY ALL LIMIT 20",
            {"tenant": context.partition_key, "run_id": context.run.run_id},
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={
            "creates_without_link": dg.MetadataValue.json([list(map(str, r)) for r in missing])
        },
    )


@dg.asset_check(
    asset=LINKS_KEY,
    partitions_def=tenant_partitions,
    description=(
        "Every plan row to apply was carried out, or its failure is recorded as a finding "
        "(nothing silently dropped)."
    ),
)
def plan_fully_accounted_for(
    context: dg.AssetCheckExecutionContext, duckdb: SyncDuckDB
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        row = first(
            conn.execute(
                "SELECT count(*) FILTER (WHERE o.seq IS NULL) AS never_attempted, "
                "count(*) FILTER (WHERE o.state IN ('failed', 'intent') AND NOT EXISTS ("
                "  SELECT 1 FROM sync.findings AS f WHERE f.tenant = p.tenant AND f.run_id = p.run_id"
                "  AND f.entity = p.entity AND f.svenn_id IS NOT DISTINCT FROM p.svenn_id"
                "  AND f.tripletex_id IS NOT DISTINCT FROM p.tripletex_id)) AS unexplained, "
                "count(*) FILTER (WHERE o.state = 'done') AS done, count(*) AS total "
                "FROM sync.plan AS p LEFT JOIN sync.operations AS o "
                "ON o.tenant = p.tenant AND o.run_id = p.run_id AND o.seq = p.seq "
                "WHERE p.tenant = ? AND p.run_id = ? AND p.apply",
                [context.partition_key, context.run.run_id],
            )
        )
        mode = first(
            conn.execute(
                "SELECT mode FROM sync.runs WHERE tenant = ? AND run_id = ?",
                [context.partition_key, context.run.run_id],
            )
        )
    never, unexplained, done, total = row
    if mode and mode[0] == "review":
        never = 0  # G9: a review run applies nothing on purpose
    return dg.AssetCheckResult(
        passed=never == 0 and unexplained == 0,
        metadata={
            "rows_to_apply": int(total),
            "done": int(done),
            "never_attempted": int(never),
            "failed_without_finding": int(unexplained),
        },
    )


@dg.asset_check(
    asset=ERRORS_KEY,
    partitions_def=tenant_partitions,
    description="Open errors of the tenant stay under the threshold (SYNC_ERROR_THRESHOLD).",
)
def open_errors_under_threshold(
    context: dg.AssetCheckExecutionContext, duckdb: SyncDuckDB
) -> dg.AssetCheckResult:
    threshold = int(os.environ.get("SYNC_ERROR_THRESHOLD", DEFAULT_ERROR_THRESHOLD))
    with duckdb.get_connection() as conn:
        n = first(
            conn.execute(
                "SELECT count(*) FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
                "AND severity = 'error'",
                [context.partition_key],
            )
        )[0]
    return dg.AssetCheckResult(
        passed=n <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"open_errors": int(n), "threshold": threshold},
    )
