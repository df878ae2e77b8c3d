"""Asset checks of the apply step, per tenant partition (visible in the Dagster UI).

Each check is a query function (testable on its own) and an ``AssetCheckSpec`` of the asset
it checks: ``sync/links`` and ``sync/errors`` evaluate their checks at the end of their own
step (a check as a step of its own cost more of Dagster's bookkeeping than its query:
issue 13). A failed blocking check still stops the run before ``sync/errors``.
"""

import os

import dagster as dg
import duckdb as duckdb_module

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.assets.keys import ERRORS_KEY, LINKS_KEY

#: Open errors per tenant above which the error-count check warns (``SYNC_ERROR_THRESHOLD``).
DEFAULT_ERROR_THRESHOLD = 50

Conn = duckdb_module.DuckDBPyConnection


def ids_in_two_active_links(conn: Conn, tenant: str) -> list[tuple]:
    """(entity, side, id, links) for every id held by more than one active link."""
    return conn.execute(
        " UNION ALL ".join(
            f"SELECT entity, '{side}' AS side, {side}_id AS id, count(*) AS n FROM sync.links "
            f"WHERE tenant = $tenant AND state = 'active' AND {side}_id IS NOT NULL "
            f"GROUP BY ALL HAVING count(*) > 1"
            for side in ("svenn", "tripletex")
        )
        + " ORDER BY ALL LIMIT 20",
        {"tenant": tenant},
    ).fetchall()


def creates_without_link(conn: Conn, tenant: str, run_id: str) -> list[tuple]:
    """(entity, target, seq, created id) of applied creates whose record no link holds."""
    return conn.execute(
        " UNION ALL ".join(
            "SELECT o.entity, o.target, o.seq, o.result_id FROM sync.operations AS o "
            "WHERE o.tenant = $tenant AND o.run_id = $run_id AND o.operation = 'create' "
            f"AND o.state = 'done' AND o.target = '{target}' AND NOT EXISTS ("
            " SELECT 1 FROM sync.links AS l WHERE l.tenant = o.tenant AND "
            f" l.entity = o.entity AND l.{target}_id = o.result_id)"
            for target in ("svenn", "tripletex")
        )
        + " ORDER BY ALL LIMIT 20",
        {"tenant": tenant, "run_id": run_id},
    ).fetchall()


def plan_accounting(conn: Conn, tenant: str, run_id: str) -> dict[str, int]:
    """Rows to apply: never attempted, failed without a finding, done, total."""
    never, unexplained, done, total = first(
        conn.execute(
            "SELECT count(*) FILTER (WHERE o.seq IS NULL), "
            "count(*) FILTER (WHERE o.state IN ('failed', 'intent') AND NOT EXISTS ("
            "  SELECT 1 FROM sync.findings AS f WHERE f.tenant = p.tenant "
            "  AND f.run_id = p.run_id AND f.entity = p.entity "
            "  AND f.svenn_id IS NOT DISTINCT FROM p.svenn_id "
            "  AND f.tripletex_id IS NOT DISTINCT FROM p.tripletex_id)), "
            "count(*) FILTER (WHERE o.state = 'done'), count(*) "
            "FROM sync.plan AS p LEFT JOIN sync.operations AS o "
            "ON o.tenant = p.tenant AND o.run_id = p.run_id AND o.seq = p.seq "
            "WHERE p.tenant = ? AND p.run_id = ? AND p.apply",
            [tenant, run_id],
        )
    )
    return {
        "never_attempted": int(never),
        "failed_without_finding": int(unexplained),
        "done": int(done),
        "rows_to_apply": int(total),
    }


def open_error_count(conn: Conn, tenant: str) -> int:
    return int(
        first(
            conn.execute(
                "SELECT count(*) FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
                "AND severity = 'error'",
                [tenant],
            )
        )[0]
    )


def _rows_json(rows: list[tuple]) -> dg.MetadataValue:
    return dg.MetadataValue.json([list(map(str, r)) for r in rows])


LINKS_CHECKS = [
    dg.AssetCheckSpec(
        "no_id_in_two_active_links",
        asset=LINKS_KEY,
        blocking=True,
        description="No Svenn or Tripletex id is in two active links (G5: no duplicates).",
    ),
    dg.AssetCheckSpec(
        "every_applied_create_has_a_link",
        asset=LINKS_KEY,
        description="Every create this run applied has a link to the record it created (G4).",
    ),
    dg.AssetCheckSpec(
        "plan_fully_accounted_for",
        asset=LINKS_KEY,
        description=(
            "Every plan row to apply was carried out, or its failure is recorded as a finding "
            "(nothing silently dropped)."
        ),
    ),
]

ERRORS_CHECKS = [
    dg.AssetCheckSpec(
        "open_errors_under_threshold",
        asset=ERRORS_KEY,
        description="Open errors of the tenant stay under the threshold (SYNC_ERROR_THRESHOLD).",
    )
]


def links_checks(conn: Conn, tenant: str, run_id: str) -> list[dg.AssetCheckResult]:
    """The results of ``LINKS_CHECKS`` after the run's writes."""
    duplicates = ids_in_two_active_links(conn, tenant)
    missing = creates_without_link(conn, tenant, run_id)
    counts = plan_accounting(conn, tenant, run_id)
    return [
        dg.AssetCheckResult(
            check_name="no_id_in_two_active_links",
            passed=not duplicates,
            metadata={"duplicates": _rows_json(duplicates)},
        ),
        dg.AssetCheckResult(
            check_name="every_applied_create_has_a_link",
            passed=not missing,
            metadata={"creates_without_link": _rows_json(missing)},
        ),
        dg.AssetCheckResult(
            check_name="plan_fully_accounted_for",
            passed=counts["never_attempted"] == 0 and counts["failed_without_finding"] == 0,
            metadata=counts,
        ),
    ]


def open_errors_under_threshold(conn: Conn, tenant: str) -> dg.AssetCheckResult:
    """The result of ``ERRORS_CHECKS``: a warning, never blocking."""
    threshold = int(os.environ.get("SYNC_ERROR_THRESHOLD", DEFAULT_ERROR_THRESHOLD))
    n = open_error_count(conn, tenant)
    return dg.AssetCheckResult(
        check_name="open_errors_under_threshold",
        passed=n <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"open_errors": n, "threshold": threshold},
    )
