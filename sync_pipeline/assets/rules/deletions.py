"""Deletions (P8, P9, C6, C7, E4) behind the mass-deletion guard (G7), and the log of
detached links (G13).

A linked record is gone in Svenn only by its tombstone (Svenn deletes softly, so absence
from a listing proves nothing), and gone in Tripletex when it is missing from a snapshot
whose latest extract completed (an incomplete extract proves nothing, G7). Then:

- Svenn side (P8, C6, E4 from a tombstone): the link is detached, nothing is written.
- Tripletex project gone (P9): the Svenn project is completed; Tripletex customer gone
  (C7): the Svenn customer is deleted. The detach is the outcome of that write (the
  executor proves the Tripletex record gone with a GET by id first), so a skipped,
  refused or failed write leaves the link as it was for the next run.
- Tripletex side without a write (E4: Tripletex cannot delete employees, so a vanished
  one only detaches; P9 when the Svenn project is completed already): a detach whose
  payload ``{"verify": "tripletex_gone"}`` tells the executor to GET the record by id and
  detach only on 404.

If an entity's deletions exceed the tenant's share of its active links, all of them are
held for an operator. Every detached link is raised again as LINK_DETACHED each run, so
the warning stays open until an operator re-attaches it (``sync-pipeline relink``).
"""

from typing import Any

import duckdb

from sync_pipeline.assets.rules.step import StepInput, replace_rows, rule_step, rules_key
from sync_pipeline.model import ENTITIES, staging_table

_RULE = {
    ("project", "svenn"): "P8",
    ("project", "tripletex"): "P9",
    ("customer", "svenn"): "C6",
    ("customer", "tripletex"): "C7",
    ("employee", "svenn"): "E4",
    ("employee", "tripletex"): "E4",
}


def _records(side: str) -> str:
    status = {"project": "status"}
    return "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, id, deleted, version, label, "
        f"{status.get(e, 'NULL')} AS status FROM {staging_table(side, e)} WHERE tenant = $tenant"
        for e in ENTITIES
    )


def gone_links_sql() -> str:
    """Active links whose record is gone on a side: a Svenn tombstone, or missing from a
    complete Tripletex extract (never absence from a Svenn listing)."""
    rule = (
        "CASE "
        + " ".join(
            f"WHEN l.entity = '{e}' AND {side}_gone THEN '{r}'" for (e, side), r in _RULE.items()
        )
        + " END"
    )
    return f"""
    WITH latest AS (
      SELECT entity, arg_max(complete, started_at) AS complete
      FROM sync.extracts WHERE tenant = $tenant AND system = 'tripletex' GROUP BY ALL
    ),
    l AS (
      SELECT l.entity, l.svenn_id, l.tripletex_id,
             coalesce(sv.deleted, false) AS svenn_gone,
             coalesce(tv.deleted, false) OR (tv.id IS NULL AND coalesce(xt.complete, false)) AS tripletex_gone
      FROM sync.links l
      LEFT JOIN ({_records("svenn")}) sv ON sv.entity = l.entity AND sv.id = l.svenn_id
      LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = l.entity AND tv.id = l.tripletex_id
      LEFT JOIN latest xt ON xt.entity = l.entity
      WHERE l.tenant = $tenant AND l.state = 'active'
    )
    SELECT entity, svenn_id, tripletex_id,
           CASE WHEN svenn_gone AND tripletex_gone THEN 'both'
                WHEN svenn_gone THEN 'svenn' ELSE 'tripletex' END AS deleted_on,
           {rule} AS rule_id
    FROM l WHERE svenn_gone OR tripletex_gone
    """


def g7_guard_sql() -> str:
    """G7: an entity whose deletions exceed the threshold share of its active links and reach
    the minimum count is held (a small company deleting one of four projects is not),
    unless an operator's 'confirm_deletes' approval is waiting to be used."""
    return f"""
    WITH gone AS ({gone_links_sql()}),
    share AS (
      SELECT g.entity, count(*) AS deletions,
             (SELECT count(*) FROM sync.links l WHERE l.tenant = $tenant AND l.state = 'active'
                AND l.entity = g.entity) AS links
      FROM gone g GROUP BY g.entity
    ),
    confirmed AS (
      SELECT count(*) > 0 AS ok FROM sync.approvals
      WHERE tenant = $tenant AND action = 'confirm_deletes' AND consumed_by_run IS NULL
    )
    SELECT $tenant, g.entity, g.svenn_id, g.tripletex_id, g.deleted_on, g.rule_id,
           s.deletions > $threshold * s.links AND s.deletions >= $min_count
             AND NOT (SELECT ok FROM confirmed) AS held
    FROM gone g JOIN share s USING (entity)
    """


def deletion_operations_sql() -> str:
    """P9 completes the Svenn project, C7 deletes the Svenn customer, and the link is
    detached by that write's outcome; every other deletion is a detach row of its own,
    verified by a GET by id (payload ``verify``) when it comes from a Tripletex listing."""
    return f"""
    WITH d AS (
      SELECT d.*, sv.version AS s_version, sv.status, sv.deleted AS s_deleted,
             coalesce(tv.label, sv.label) AS label, l.key,
             CASE WHEN d.held THEN 'mass_delete' END AS held_reason,
             CASE d.deleted_on WHEN 'svenn' THEN 'deleted in Svenn'
               WHEN 'both' THEN 'deleted in both systems'
               ELSE 'missing from a complete Tripletex listing' END AS why
      FROM rules.deletions d
      JOIN sync.links l ON l.tenant = d.tenant AND l.entity = d.entity AND l.state = 'active'
        AND l.svenn_id IS NOT DISTINCT FROM d.svenn_id AND l.tripletex_id IS NOT DISTINCT FROM d.tripletex_id
      LEFT JOIN ({_records("svenn")}) sv ON sv.entity = d.entity AND sv.id = d.svenn_id
      LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = d.entity AND tv.id = d.tripletex_id
      WHERE d.tenant = $tenant
    ),
    op AS (
      SELECT *, CASE WHEN deleted_on <> 'tripletex' THEN 'detach'
                     WHEN rule_id = 'P9' AND status IS DISTINCT FROM 'completed' THEN 'complete'
                     WHEN rule_id = 'C7' THEN 'delete'
                     ELSE 'detach' END AS operation
      FROM d
    )
    SELECT $tenant, 'deletions', entity, CASE operation WHEN 'detach' THEN 'state' ELSE 'svenn' END,
           operation, svenn_id, tripletex_id, key, label,
           CASE WHEN operation = 'complete' THEN json_object('status', 'completed')
                WHEN deleted_on = 'tripletex' THEN json_object('verify', 'tripletex_gone') END,
           CASE WHEN operation = 'complete' THEN ['status'] END,
           CASE WHEN operation = 'complete' THEN ['P9', 'P7', 'G7'] ELSE [rule_id, 'G7'] END,
           why, CASE WHEN operation <> 'detach' THEN s_version END, NULL, held_reason
    FROM op
    """


def tombstone_link_operations_sql() -> str:
    """P8/C6 on a first sync: the pair is recorded and detached at once, nothing is written."""
    rule = "CASE p.entity WHEN 'project' THEN 'P8' WHEN 'customer' THEN 'C6' ELSE 'E4' END"
    return f"""
    SELECT $tenant, 'deletions', p.entity, 'state', op.operation, p.svenn_id, p.tripletex_id,
           p.key, tv.label, op.payload, NULL, [{rule}, 'G3'], 'deleted in Svenn before the first sync',
           NULL, NULL, NULL
    FROM rules.pairs p
    LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = p.entity AND tv.id = p.tripletex_id
    CROSS JOIN (VALUES ('link', json_object('origin', 'matched', 'via', 'key')), ('detach', NULL))
      AS op(operation, payload)
    WHERE p.tenant = $tenant AND p.kind = 'matched_deleted'
    """


def g13_detached_links_sql() -> str:
    """G13: every detached link of the tenant, with the rule that detached it and why,
    raised again each run so its warning stays open until the link is re-attached."""
    return f"""
    SELECT $tenant, 'deletions', l.entity, NULL, l.svenn_id, l.tripletex_id,
           coalesce(tv.label, sv.label, l.key), 'LINK_DETACHED',
           json_object('rule_id', d.rule_id, 'reason', coalesce(d.reason, 'unknown'),
                       'detached_at', d.detached_at, 'detached_by_run', d.run_id)
    FROM sync.links l
    LEFT JOIN (SELECT * FROM sync.link_detachments WHERE tenant = $tenant
               QUALIFY row_number() OVER (PARTITION BY entity, svenn_id, tripletex_id
                                          ORDER BY detached_at DESC) = 1) d
      ON d.entity = l.entity AND d.svenn_id IS NOT DISTINCT FROM l.svenn_id
      AND d.tripletex_id IS NOT DISTINCT FROM l.tripletex_id
    LEFT JOIN ({_records("svenn")}) sv ON sv.entity = l.entity AND sv.id = l.svenn_id
    LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = l.entity AND tv.id = l.tripletex_id
    WHERE l.tenant = $tenant AND l.state = 'detached'
    """


def g7_findings_sql() -> str:
    return """
    SELECT $tenant, 'deletions', entity, NULL, NULL, NULL, NULL, 'MASS_DELETE_HELD',
           json_object('deletions', count(*), 'threshold', $threshold, 'min_count', $min_count)
    FROM rules.deletions WHERE tenant = $tenant AND held GROUP BY entity
    """


def _params(step: StepInput) -> dict[str, Any]:
    return {
        "threshold": step.config.mass_delete_threshold,
        "min_count": step.config.mass_delete_min_count,
    }


def _write(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, int]:
    tenant, where = params["tenant"], "AND step = 'deletions'"
    ops = f"{deletion_operations_sql()} UNION ALL {tombstone_link_operations_sql()}"
    findings = f"{g7_findings_sql()} UNION ALL {g13_detached_links_sql()}"
    return {
        "deletions": replace_rows(conn, "rules.deletions", tenant, g7_guard_sql(), params),
        "operations": replace_rows(conn, "rules.operations", tenant, ops, params, where),
        "findings": replace_rows(conn, "rules.findings", tenant, findings, params, where),
    }


deletions = rule_step(
    "deletions",
    [rules_key("pairs")],
    "Links whose record is gone on one side (P8, P9, C6, C7, E4: a Svenn tombstone, or "
    "missing from a complete Tripletex extract), with the mass-deletion guard (G7): "
    "complete/delete operations that detach on success, verified detaches; LINK_DETACHED "
    "for every detached link (G13).",
    params=_params,
    write=_write,
    preview_sql="SELECT entity, rule_id, deleted_on, held, count(*) AS links FROM rules.deletions "
    "WHERE tenant = $tenant GROUP BY ALL ORDER BY ALL",
)
