"""The error log (``sync.errors``) merged from the run's findings (G10).

``sync.errors`` is merged set-based from the run's ``sync.findings``: one open row per
(tenant, code, entity, record); seen again, ``last_seen_at`` moves and message/details
refresh; not seen in a complete run, ``resolved_at`` is set. Rows are never deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.resources.state import columns, staged_rows, transaction


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
    rows = columns(
        findings,
        *("tenant", "run_id", "entity", "side", "svenn_id", "tripletex_id", "record_label"),
        *("code", "severity", "rule_id", "message"),
        details=lambda f: (
            json.dumps(f.details, ensure_ascii=False, default=str) if f.details else None
        ),
    )
    with staged_rows(conn, rows) as staged:
        conn.execute(
            "INSERT INTO sync.findings (tenant, run_id, entity, side, svenn_id, tripletex_id, "
            "record_label, code, severity, rule_id, message, details) "
            "SELECT tenant, run_id, entity, side, svenn_id, tripletex_id, record_label, code, "
            f"severity, rule_id, message, CAST(details AS JSON) FROM {staged}"
        )


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
    with transaction(conn):
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
    return int(opened), int(resolved)
