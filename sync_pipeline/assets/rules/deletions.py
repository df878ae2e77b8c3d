"""Deletions (P8, P9, C6, C7) behind the mass-deletion guard (G7).

A linked record is gone when Svenn shows its tombstone, or when it is missing from a
snapshot whose latest extract completed (an incomplete extract proves nothing, G7).
Then: Svenn project gone → detach (P8); Tripletex project gone → Svenn project completed,
detach (P9); Svenn customer gone → detach, never a Tripletex delete (C6); Tripletex
customer gone → deleted in Svenn, detach (C7). Tripletex cannot delete employees (E4),
so a vanished employee on either side only detaches its link. If an entity's deletions
exceed the tenant's share of its active links, all of them are held for an operator.
"""

import time

from dagster import AssetExecutionContext

from sync_pipeline.assets.rules.step import (
    in_transaction,
    preview,
    replace_rows,
    result,
    rule_asset,
    rules_key,
)
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
    """Active links whose record is gone on a side (tombstone, or missing from a complete extract)."""
    rule = (
        "CASE "
        + " ".join(
            f"WHEN l.entity = '{e}' AND {side}_gone THEN '{r}'" for (e, side), r in _RULE.items()
        )
        + " END"
    )
    return f"""
    WITH latest AS (
      SELECT system, entity, arg_max(complete, started_at) AS complete
      FROM sync.extracts WHERE tenant = $tenant GROUP BY ALL
    ),
    l AS (
      SELECT l.entity, l.svenn_id, l.tripletex_id,
             coalesce(sv.deleted, false) OR (sv.id IS NULL AND coalesce(xs.complete, false)) AS svenn_gone,
             coalesce(tv.deleted, false) OR (tv.id IS NULL AND coalesce(xt.complete, false)) AS tripletex_gone
      FROM sync.links l
      LEFT JOIN ({_records("svenn")}) sv ON sv.entity = l.entity AND sv.id = l.svenn_id
      LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = l.entity AND tv.id = l.tripletex_id
      LEFT JOIN latest xs ON xs.system = 'svenn' AND xs.entity = l.entity
      LEFT JOIN latest xt ON xt.system = 'tripletex' AND xt.entity = l.entity
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
    """P9 completes the Svenn project, C7 deletes the Svenn customer; every deletion detaches."""
    return f"""
    WITH d AS (
      SELECT d.*, sv.version AS s_version, sv.status, sv.deleted AS s_deleted,
             coalesce(tv.label, sv.label) AS label, l.key,
             CASE WHEN d.held THEN 'mass_delete' END AS held_reason
      FROM rules.deletions d
      JOIN sync.links l ON l.tenant = d.tenant AND l.entity = d.entity AND l.state = 'active'
        AND l.svenn_id IS NOT DISTINCT FROM d.svenn_id AND l.tripletex_id IS NOT DISTINCT FROM d.tripletex_id
      LEFT JOIN ({_records("svenn")}) sv ON sv.entity = d.entity AND sv.id = d.svenn_id
      LEFT JOIN ({_records("tripletex")}) tv ON tv.entity = d.entity AND tv.id = d.tripletex_id
      WHERE d.tenant = $tenant
    )
    SELECT $tenant, 'deletions', entity, 'svenn', 'complete', svenn_id, tripletex_id, key, label,
           json_object('status', 'completed'), ['status'], ['P9', 'P7'],
           'deleted in Tripletex', s_version, NULL, held_reason
    FROM d WHERE rule_id = 'P9' AND deleted_on = 'tripletex' AND status IS DISTINCT FROM 'completed'
    UNION ALL
    SELECT $tenant, 'deletions', entity, 'svenn', 'delete', svenn_id, tripletex_id, key, label,
           NULL, NULL, ['C7'], 'deleted in Tripletex', s_version, NULL, held_reason
    FROM d WHERE rule_id = 'C7' AND deleted_on = 'tripletex'
    UNION ALL
    SELECT $tenant, 'deletions', entity, 'state', 'detach', svenn_id, tripletex_id, key, label,
           NULL, NULL, [rule_id, 'G7'], 'deleted in ' || CASE deleted_on WHEN 'svenn' THEN 'Svenn'
             WHEN 'tripletex' THEN 'Tripletex' ELSE 'both systems' END, NULL, NULL, held_reason
    FROM d
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


def g7_findings_sql() -> str:
    return """
    SELECT $tenant, 'deletions', entity, NULL, NULL, NULL, NULL, 'MASS_DELETE_HELD',
           json_object('deletions', count(*), 'threshold', $threshold, 'min_count', $min_count)
    FROM rules.deletions WHERE tenant = $tenant AND held GROUP BY entity
    """


@rule_asset(
    "deletions",
    [rules_key("pairs")],
    "Links whose record is gone on one side (P8, P9, C6, C7; only from complete extracts), "
    "with the mass-deletion guard (G7): detach/complete/delete operations.",
)
def deletions(context: AssetExecutionContext):
    started = time.perf_counter()
    tenant = context.partition_key
    config = context.resources.tenants.get(tenant)
    params = {
        "tenant": tenant,
        "threshold": config.mass_delete_threshold,
        "min_count": config.mass_delete_min_count,
    }
    with context.resources.duckdb.get_connection() as conn:

        def work() -> dict[str, int]:
            where = "AND step = 'deletions'"
            ops = f"{deletion_operations_sql()} UNION ALL {tombstone_link_operations_sql()}"
            return {
                "deletions": replace_rows(conn, "rules.deletions", tenant, g7_guard_sql(), params),
                "operations": replace_rows(conn, "rules.operations", tenant, ops, params, where),
                "findings": replace_rows(
                    conn, "rules.findings", tenant, g7_findings_sql(), params, where
                ),
            }

        rows = in_transaction(conn, work)
        md = preview(
            conn,
            "SELECT entity, rule_id, deleted_on, held, count(*) AS links FROM rules.deletions "
            "WHERE tenant = $tenant GROUP BY ALL ORDER BY ALL",
            params,
        )
    return result(context, started, rows, md)
