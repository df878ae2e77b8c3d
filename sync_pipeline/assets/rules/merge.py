"""The merge of every pair whose records both live: three-way (G2) for links, first-match (G3).

One long frame, a row per (pair, field): the base, both sides' values (references as link
identities), what the merge decides and which rule blocks a write. Blocked writes keep
the unwritten side's value as the agreed one, so the next run sees the same difference
again (C3 warns "until they agree"; E3 holds an inactive employee's edits).

Base bookkeeping for the apply step: ``link`` rows carry the whole base, with a field
that an ``update`` of the same plan writes still holding the value it overwrites (if the
update fails, the next run sees the other side's change and writes it again).
``update`` rows carry only the fields they settle (merge them into the base); an
``update`` with target ``state`` settles fields both sides changed alike, with no call.
"""

from typing import Any

import duckdb

from sync_pipeline.assets.rules.canonical import (
    api_name_sql,
    base_json_sql,
    mapped_values_sql,
    ref_entity_sql,
    svenn_json_sql,
    svenn_ref_json_sql,
    tripletex_json_sql,
)
from sync_pipeline.assets.rules.step import (
    StepInput,
    count_rows,
    insert_rows,
    replace_rows,
    rule_step,
    rules_key,
)
from sync_pipeline.model import ENTITIES, staging_table


def may_manage_projects_sql(employee: str) -> str:
    """P10: Tripletex lets the staged employee row ``employee`` manage projects — it is on the
    ``assignableProjectManagers`` list the extract lands; until a list is landed for the
    tenant, judged by userType (EXTENDED and STANDARD users may, NO_ACCESS may not)."""
    managers = "SELECT employee_id FROM staging.tripletex_project_managers WHERE tenant = $tenant"
    return (
        f"(CASE WHEN EXISTS ({managers}) THEN {employee}.id IN ({managers}) "
        f"ELSE {employee}.user_type IN ('EXTENDED', 'STANDARD') END)"
    )


def _side_values(side: str) -> str:
    return "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, * FROM ({mapped_values_sql(side, e)})" for e in ENTITIES
    )


def _records(side: str) -> str:
    return "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, id, version, modified_at, label FROM {staging_table(side, e)} "
        f"WHERE tenant = $tenant AND NOT deleted"
        for e in ENTITIES
    )


def merge_pairs_sql() -> str:
    """The pairs to merge: active links and new matches whose records both live and are not
    excluded (eligibility holds live records only)."""
    return f"""
    SELECT p.entity, p.svenn_id, p.tripletex_id, p.kind, p.key, l.base,
           sr.version AS s_version, tr.version AS t_version,
           sr.modified_at AS s_mod, tr.modified_at AS t_mod, coalesce(tr.label, sr.label) AS label,
           es.create_blocked = 'EMPLOYEE_INACTIVE_SKIPPED' AS s_inactive_employee,
           et.create_blocked = 'PROJECT_INTERNAL_SKIPPED' AS t_internal,
           EXISTS (SELECT 1 FROM sync.links x WHERE x.tenant = p.tenant AND x.entity = p.entity)
             AS after_go_live
    FROM rules.pairs p
    JOIN rules.eligibility es ON es.tenant = p.tenant AND es.entity = p.entity
      AND es.side = 'svenn' AND es.id = p.svenn_id AND es.excluded IS NULL
    JOIN rules.eligibility et ON et.tenant = p.tenant AND et.entity = p.entity
      AND et.side = 'tripletex' AND et.id = p.tripletex_id AND et.excluded IS NULL
    JOIN ({_records("svenn")}) sr ON sr.entity = p.entity AND sr.id = p.svenn_id
    JOIN ({_records("tripletex")}) tr ON tr.entity = p.entity AND tr.id = p.tripletex_id
    LEFT JOIN sync.links l ON l.tenant = p.tenant AND l.entity = p.entity AND l.state = 'active'
      AND l.svenn_id = p.svenn_id AND l.tripletex_id = p.tripletex_id
    WHERE p.tenant = $tenant AND p.kind IN ('linked', 'matched')
    """


def p11_unmapped_svenn_value_sql() -> str:
    """P11/P10: a Svenn reference to a record that is not synced (``s_unmapped``) as the merge
    sees it. A new match takes Tripletex's value (G3: NULL on the Svenn side, so Tripletex's
    reference is written to Svenn when it can be). For a link, a customer moved away from
    the synced one the base names to an unsynced one means the project syncs without
    customer (P11: NULL); otherwise — the base names no synced Svenn customer, or the field
    is the project manager, whom Tripletex requires — Svenn's value counts as unchanged."""
    synced_customers = (
        "SELECT CAST(tripletex_id AS VARCHAR) FROM rules.pairs WHERE tenant = $tenant "
        "AND entity = 'customer' AND svenn_id IS NOT NULL AND tripletex_id IS NOT NULL"
    )
    return (
        "CASE WHEN NOT s_unmapped THEN s WHEN kind <> 'linked' THEN NULL "
        f"WHEN field = 'customer_id' AND b IN ({synced_customers}) THEN NULL ELSE b END"
    )


def g2_g3_decide_sql() -> str:
    """G2 per link field (one side changed → copy; both → newest wins, Tripletex without a
    timestamp, or the tenant's policy); G3 for a new match: on the entity's first sync the
    non-empty Tripletex value wins, after go-live (e.g. P4) it is G2 with no base — each
    differing non-empty field goes to the more recently changed record."""
    return f"""
    WITH mp AS ({merge_pairs_sql()}),
    j AS (
      SELECT mp.*, sv.field, sv.value AS s, sv.unmapped AS s_unmapped, tv.value AS t,
             CASE WHEN mp.kind = 'linked' THEN json_extract_string(mp.base, '$.' || sv.field) END AS b
      FROM mp
      JOIN ({_side_values("svenn")}) sv ON sv.entity = mp.entity AND sv.id = mp.svenn_id
      JOIN ({_side_values("tripletex")}) tv
        ON tv.entity = mp.entity AND tv.id = mp.tripletex_id AND tv.field = sv.field
    ),
    c AS (
      SELECT *, {p11_unmapped_svenn_value_sql()} AS s_eff
      FROM j
    ),
    d AS (
      SELECT *, s_eff IS DISTINCT FROM b AS s_ch, t IS DISTINCT FROM b AS t_ch FROM c
    ),
    w AS (
      SELECT *,
        CASE WHEN (kind = 'linked' AND s_ch AND t_ch AND s_eff IS DISTINCT FROM t)
               OR (kind = 'matched' AND after_go_live AND s_eff <> t) THEN
          CASE $policy WHEN 'svenn_wins' THEN 'svenn' WHEN 'tripletex_wins' THEN 'tripletex'
            ELSE CASE WHEN s_mod IS NOT NULL AND t_mod IS NOT NULL AND s_mod > t_mod
                      THEN 'svenn' ELSE 'tripletex' END END
        END AS winner
      FROM d
    )
    SELECT *,
      CASE WHEN kind = 'matched' AND winner = 'svenn' THEN s_eff
           WHEN kind = 'matched' THEN coalesce(t, s_eff)
           WHEN s_ch AND NOT t_ch THEN s_eff
           WHEN winner = 'svenn' THEN s_eff
           WHEN t_ch THEN t
           ELSE b END AS merged
    FROM w
    """


def blocks_sql() -> str:
    """Writes the rules forbid: P5/E2 (an empty number: the numbering step generates one for
    both sides), C3 (never inactivate in Tripletex), E3 (inactive Svenn
    employee), P1/E1 and names (Tripletex requires them), P10 (manager without access),
    P11 (a reference the target side cannot express)."""
    return f"""
    SELECT m.*, CASE
      WHEN m.write_to IS NOT NULL AND m.field = 'number' AND m.merged IS NULL
           THEN CASE m.entity WHEN 'project' THEN 'P5' ELSE 'E2' END  -- numbering writes one
      WHEN m.write_to = 'tripletex' AND m.entity = 'customer' AND m.field = 'is_active'
           AND m.merged = 'false' THEN 'C3'
      WHEN m.write_to = 'tripletex' AND m.s_inactive_employee THEN 'E3'
      WHEN m.write_to = 'tripletex' AND m.merged IS NULL AND m.field = 'start_date' THEN 'P1'
      WHEN m.write_to = 'tripletex' AND m.merged IS NULL AND m.field IN ('last_name', 'first_name')
           THEN 'E1'
      WHEN m.write_to = 'tripletex' AND m.merged IS NULL AND m.field = 'name' THEN 'G2'
      WHEN m.write_to = 'tripletex' AND m.field = 'project_manager_id' AND NOT (
             (starts_with(m.merged, '$svenn:') AND $pending_can_manage)
             OR EXISTS (SELECT 1 FROM staging.tripletex_employees e WHERE e.tenant = $tenant
                        AND NOT e.deleted AND {may_manage_projects_sql("e")}
                        AND CAST(e.id AS VARCHAR) = m.merged)) THEN 'P10'
      WHEN m.write_to = 'svenn' AND m.ref_entity IS NOT NULL AND m.merged IS NOT NULL
           AND m.ref_json IS NULL THEN
           CASE m.field WHEN 'customer_id' THEN 'P11' ELSE 'P10' END
    END AS blocked_by
    FROM (
      SELECT m.*, CASE WHEN m.merged IS DISTINCT FROM m.t THEN 'tripletex'
                       WHEN m.merged IS DISTINCT FROM m.s_eff THEN 'svenn' END AS write_to,
             CASE WHEN m.ref_entity IS NULL THEN to_json(m.merged)
                  ELSE {svenn_ref_json_sql("m.merged", "m.ref_entity", "q")} END AS ref_json
      FROM (SELECT *, {ref_entity_sql()} AS ref_entity FROM merge_work_raw) m
      LEFT JOIN rules.pairs q ON q.tenant = $tenant AND q.entity = m.ref_entity
        AND q.tripletex_id = TRY_CAST(m.merged AS BIGINT)
    ) m
    """


_DECISIONS_SQL = """
SELECT $tenant, entity, svenn_id, tripletex_id, field, b, s_eff, t, merged,
       write_to, blocked_by, winner
FROM merge_work
"""


def _field_rule_sql() -> str:
    return (
        "CASE WHEN field = 'status' THEN 'P7' "
        "WHEN entity = 'customer' AND field = 'is_active' AND write_to = 'tripletex' THEN 'C4' "
        "WHEN entity = 'customer' AND field = 'is_active' THEN 'C7' "
        "WHEN field = 'customer_id' THEN 'P11' WHEN field = 'project_manager_id' THEN 'P10' END"
    )


def update_operations_sql() -> str:
    """One update per pair and side written, with only the changed fields (G6: none when
    nothing changed); Tripletex bodies carry id and version (G8)."""
    # id and version patched onto the fields (not the other way round): a merge patch drops
    # the null of a field cleared on purpose (P11 customer, an end date).
    payload = (
        "CASE WHEN write_to = 'tripletex' THEN json_merge_patch("
        f"json_group_object({api_name_sql('tripletex')}, {tripletex_json_sql(value='merged')}), "
        "json_object('id', tripletex_id, 'version', t_version)) "
        f"ELSE json_group_object({api_name_sql('svenn')}, "
        f"{svenn_json_sql(value='merged', ref='ref_json')}) END"
    )
    return f"""
    SELECT $tenant, 'merge', entity, write_to, 'update', svenn_id, tripletex_id, key, label,
           {payload}, list(field ORDER BY field),
           list_sort(list_distinct(list_concat(
             [CASE WHEN kind = 'matched' THEN 'G3' ELSE 'G2' END],
             CASE WHEN any_value(t_internal) THEN ['P4'] ELSE [] END,
             list({_field_rule_sql()}) FILTER (WHERE {_field_rule_sql()} IS NOT NULL)))),
           CASE WHEN kind = 'matched' THEN 'first match: empty values filled in'
                ELSE 'changed on the other side' END,
           CASE WHEN write_to = 'tripletex' THEN t_version ELSE s_version END,
           json_group_object(field, {base_json_sql(value="merged")}), NULL
    FROM merge_work
    WHERE write_to IS NOT NULL AND blocked_by IS NULL
    GROUP BY entity, write_to, svenn_id, tripletex_id, key, label, kind, t_version, s_version
    """


def settle_operations_sql() -> str:
    """Fields of a link both sides changed alike: the base follows, no call (target state)."""
    return f"""
    SELECT $tenant, 'merge', entity, 'state', 'update', svenn_id, tripletex_id, key, label,
           NULL, list(field ORDER BY field), ['G2'], 'changed alike on both sides', NULL,
           json_group_object(field, {base_json_sql(value="merged")}), NULL
    FROM merge_work
    WHERE kind = 'linked' AND write_to IS NULL AND merged IS DISTINCT FROM b
    GROUP BY entity, svenn_id, tripletex_id, key, label
    """


def g3_link_operations_sql() -> str:
    """G3: a new match becomes a link (origin matched) with the base both sides hold after it."""
    before = (
        "CASE WHEN blocked_by IS NOT NULL AND write_to = 'tripletex' THEN t "
        "WHEN blocked_by IS NOT NULL THEN s_eff "
        "WHEN write_to = 'svenn' THEN s_eff WHEN write_to = 'tripletex' THEN t ELSE merged END"
    )
    return f"""
    SELECT $tenant, 'merge', entity, 'state', 'link', svenn_id, tripletex_id, key, label,
           json_object('origin', 'matched', 'via', any_value(via)), NULL, ['G3'],
           'matched by ' || any_value(via), NULL,
           json_group_object(field, {base_json_sql(value=before)}), NULL
    FROM merge_work JOIN (SELECT entity, svenn_id, tripletex_id, via FROM rules.pairs
                          WHERE tenant = $tenant AND kind = 'matched') USING (entity, svenn_id, tripletex_id)
    WHERE kind = 'matched'
    GROUP BY entity, svenn_id, tripletex_id, key, label
    """


def conflicts_sql() -> str:
    return f"""
    SELECT $tenant, m.entity, m.svenn_id, m.tripletex_id, m.field,
           {base_json_sql("m.entity", "m.field", "m.b")}, {base_json_sql("m.entity", "m.field", "m.s_eff")},
           {base_json_sql("m.entity", "m.field", "m.t")}, m.winner, m.s_mod, m.t_mod
    FROM merge_work m WHERE m.winner IS NOT NULL
    """


def merge_findings_sql() -> str:
    """G2 conflicts (info), C3 while the two disagree (warning), E3 edits held (info), and the
    other blocked writes (G10)."""
    return """
    SELECT $tenant, 'merge', entity, NULL, svenn_id, tripletex_id, label, 'EDIT_CONFLICT',
           json_object('field', field, 'winner', winner, 'svenn_value', s_eff,
                       'tripletex_value', t, 'base_value', b)
    FROM merge_work WHERE winner IS NOT NULL
    UNION ALL
    SELECT $tenant, 'merge', entity, 'svenn', svenn_id, tripletex_id, label,
           'CUSTOMER_INACTIVATE_IN_TRIPLETEX', NULL
    FROM merge_work
    WHERE entity = 'customer' AND field = 'is_active' AND s_eff = 'false' AND t = 'true'
    UNION ALL
    SELECT DISTINCT $tenant, 'merge', entity, 'svenn', svenn_id, tripletex_id, label,
           'EMPLOYEE_INACTIVE_SKIPPED', json_object('held_fields', 'changes not sent to Tripletex')
    FROM merge_work WHERE blocked_by = 'E3'
    UNION ALL
    """ + g10_linked_block_findings_sql()


def g10_linked_block_findings_sql() -> str:
    """G10: a rule that blocks a change of a linked (or just matched) pair logs the same code
    as for an unlinked record — P1, E1, P10, P11 — while the block lasts; a Svenn reference
    to a record that is not synced (P11 customer, P10 manager) too, even when nothing is
    written. Nothing is left out silently."""
    return """
    SELECT $tenant, 'merge', entity, min(side), svenn_id, tripletex_id, label, code,
           json_object('rule_id', min(rule_id), 'fields', list(DISTINCT field ORDER BY field))
    FROM (
      SELECT entity, svenn_id, tripletex_id, label, field, blocked_by AS rule_id,
             CASE write_to WHEN 'svenn' THEN 'tripletex' ELSE 'svenn' END AS side,
             CASE blocked_by
               WHEN 'P1' THEN 'PROJECT_MISSING_START_DATE'
               WHEN 'E1' THEN CASE WHEN field = 'last_name' THEN 'EMPLOYEE_MISSING_SURNAME'
                                   ELSE 'REQUIRED_FIELD_MISSING' END
               WHEN 'G2' THEN 'REQUIRED_FIELD_MISSING'
               WHEN 'P10' THEN CASE write_to WHEN 'tripletex' THEN 'PROJECT_MANAGER_DEFAULTED'
                                             ELSE 'PROJECT_MANAGER_NOT_SYNCED' END
               WHEN 'P11' THEN 'PROJECT_CUSTOMER_NOT_SYNCED' END AS code
      FROM merge_work WHERE blocked_by IN ('P1', 'E1', 'G2', 'P10', 'P11')
      UNION ALL
      SELECT entity, svenn_id, tripletex_id, label, field,
             CASE field WHEN 'customer_id' THEN 'P11' ELSE 'P10' END, 'svenn',
             CASE field WHEN 'customer_id' THEN 'PROJECT_CUSTOMER_NOT_SYNCED'
                        ELSE 'PROJECT_MANAGER_DEFAULTED' END
      FROM merge_work WHERE s_unmapped
    )
    GROUP BY entity, svenn_id, tripletex_id, label, code
    """


def _params(step: StepInput) -> dict[str, Any]:
    return {
        "policy": step.config.conflict_policy,
        "pending_can_manage": step.config.employee_user_type in ("EXTENDED", "STANDARD"),
    }


def _write(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, int]:
    tenant, where = params["tenant"], "AND step = 'merge'"
    conn.execute(f"DELETE FROM rules.operations WHERE tenant = ? {where}", [tenant])
    for ops in (g3_link_operations_sql(), update_operations_sql(), settle_operations_sql()):
        insert_rows(conn, "rules.operations", ops, params)
    return {
        "decisions": replace_rows(conn, "rules.decisions", tenant, _DECISIONS_SQL, params),
        "conflicts": replace_rows(conn, "rules.conflicts", tenant, conflicts_sql(), params),
        "findings": replace_rows(
            conn, "rules.findings", tenant, merge_findings_sql(), params, where
        ),
        "operations": count_rows(conn, "rules.operations", tenant, where),
    }


merge = rule_step(
    "merge",
    [rules_key("pairs")],
    "Field-by-field merge of linked pairs (G2, with conflicts) and new matches (G3), with the "
    "rules that forbid a write (C3, E3, P1, E1, P10, P11): update operations and findings.",
    params=_params,
    scratch=(("merge_work_raw", g2_g3_decide_sql), ("merge_work", blocks_sql)),
    write=_write,
    preview_sql="SELECT entity, target, operation, count(*) AS operations FROM rules.operations "
    "WHERE tenant = $tenant AND step = 'merge' GROUP BY ALL ORDER BY ALL",
)
