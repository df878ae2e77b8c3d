"""Creates (G4) with the rules that shape a new record: P5/E2, P10, P11, C5, E4, P12,
behind the mass-create guard (G12).

Every create sends its key (a generated number when the record has none, also written
back to the source with ``set_number``) so an interrupted run finds the record by key
next time instead of creating it twice (G4, G5). A create's ``base_after`` is the whole
base as sent: an omitted reference (P11) or a defaulted project manager (P10) is what the
base records, so the next run does not mistake it for an edit.
"""

from dataclasses import dataclass
from typing import Any

import duckdb

from sync_pipeline.assets.rules.canonical import (
    PENDING_SVENN,
    api_name_sql,
    base_json_sql,
    json_object_agg,
    mapped_values_sql,
    ref_entity_sql,
    svenn_json_sql,
    svenn_ref_json_sql,
    tripletex_json_sql,
)
from sync_pipeline.assets.rules.merge import may_manage_projects_sql
from sync_pipeline.assets.rules.step import (
    StepInput,
    bind,
    count_rows,
    insert_rows,
    replace_rows,
    rule_step,
    rules_key,
)
from sync_pipeline.model import ENTITIES, staging_table


@dataclass(frozen=True)
class Defaults:
    project_manager_id: int | None  # Tripletex employee id (P10)
    department_id: int | None  # Tripletex department id (E4)


def tenant_defaults(conn: duckdb.DuckDBPyConnection, tenant: str, config) -> Defaults:
    """P10/E4 defaults: the configured employee number, else the integration's own user
    (``>whoAmI``, landed by the extract in ``sync.tenant_context``), else the lowest-id
    EXTENDED employee — each only if Tripletex lets them manage projects; the manager's department stands in for "the first department"
    (extraction does not land departments).
    """
    row = conn.execute(
        f"""
        SELECT e.id, e.department_id FROM staging.tripletex_employees e
        LEFT JOIN sync.tenant_context c ON c.tenant = e.tenant
        WHERE e.tenant = $tenant AND NOT e.deleted AND {may_manage_projects_sql("e")}
        ORDER BY coalesce(trim(e.number) = $number, false) DESC,
                 coalesce(e.id = c.tripletex_employee_id, false) DESC,
                 e.user_type <> 'EXTENDED', e.id
        LIMIT 1
        """,
        {"tenant": tenant, "number": config.default_project_manager_employee_number},
    ).fetchone()
    manager, manager_department = (row[0], row[1]) if row else (None, None)
    (first_department,) = conn.execute(
        "SELECT min(department_id) FROM staging.tripletex_employees WHERE tenant = ?", [tenant]
    ).fetchone()
    return Defaults(manager, config.default_department_id or manager_department or first_department)


def _source_values(side: str) -> str:
    """The source record's canonical values, the key replaced by a generated number (P5, E2)."""
    kind = "create_in_tripletex" if side == "svenn" else "create_in_svenn"
    values = "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, * FROM ({mapped_values_sql(side, e)})" for e in ENTITIES
    )
    return f"""
    SELECT p.entity, p.svenn_id, p.tripletex_id, v.field,
           CASE WHEN v.field = 'number' THEN coalesce(v.value, n.number) ELSE v.value END AS value,
           v.unmapped, st.label, st.version,
           v.field = 'number' AND v.value IS NULL AND n.number IS NOT NULL AS generated
    FROM rules.pairs p
    JOIN ({values}) v ON v.entity = p.entity AND v.id = p.{side}_id
    JOIN ({_labels(side)}) st ON st.entity = p.entity AND st.id = p.{side}_id
    LEFT JOIN rules.numbers n ON n.tenant = p.tenant AND n.entity = p.entity
      AND n.side = '{side}' AND n.id = p.{side}_id
    WHERE p.tenant = $tenant AND p.kind = '{kind}'
    """


def _labels(side: str) -> str:
    return "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, id, label, version FROM {staging_table(side, e)} "
        f"WHERE tenant = $tenant"
        for e in ENTITIES
    )


def p10_p11_to_tripletex_sql() -> str:
    """P10: the project manager is the linked employee if Tripletex lets them manage
    projects, else the tenant's default. P11: an unsynced customer is left out."""
    return f"""
    SELECT *, CASE
        WHEN field = 'customer_id' AND unmapped THEN NULL
        WHEN field = 'project_manager_id' AND NOT coalesce(
               (starts_with(value, '{PENDING_SVENN}') AND $pending_can_manage)
               OR value IN (SELECT CAST(e.id AS VARCHAR) FROM staging.tripletex_employees e
                            WHERE e.tenant = $tenant AND NOT e.deleted
                              AND {may_manage_projects_sql("e")}), false)
          THEN CAST($default_pm AS VARCHAR)
        ELSE value END AS sent
    FROM ({_source_values("svenn")})
    """


def to_tripletex_operations_sql() -> str:
    """G4 Svenn → Tripletex, with E4 (userType, department) and C5 (invoice by e-mail)."""
    extras = """CASE entity
        WHEN 'employee' THEN json_object('userType', $user_type, 'department',
             CASE WHEN $department_id IS NOT NULL THEN json_object('id', $department_id) END)
        WHEN 'customer' THEN CASE WHEN any_value(sent) FILTER (WHERE field = 'email') IS NOT NULL
             THEN json_object('invoiceSendMethod', 'EMAIL',
                              'invoiceEmail', any_value(sent) FILTER (WHERE field = 'email'))
             ELSE json_object() END
        ELSE json_object() END"""
    payload = json_object_agg(
        api_name_sql("tripletex"), tripletex_json_sql(value="sent"), "sent IS NOT NULL"
    )
    return f"""
    SELECT $tenant, 'creates', c.entity, 'tripletex', 'create', c.svenn_id, NULL,
           any_value(sent) FILTER (WHERE field = 'number'), any_value(c.label),
           json_merge_patch({payload}, {extras}), list(field ORDER BY field) FILTER (WHERE sent IS NOT NULL),
           list_distinct(['G4'] || CASE c.entity WHEN 'employee' THEN ['E4'] WHEN 'customer' THEN ['C5']
                                   ELSE ['P10', 'P11'] END),
           'new in Svenn', NULL,
           json_group_object(field, {base_json_sql(value="CASE WHEN generated THEN NULL ELSE sent END")}),
           NULL
    FROM create_tx c
    GROUP BY c.entity, c.svenn_id
    """


def to_svenn_values_sql() -> str:
    """The values of each Tripletex → Svenn create: references through links or ``$ref``;
    one Svenn cannot take (not synced, or deleted in Svenn) is left out (P10, P11)."""
    return f"""
    WITH v AS (
      SELECT v.*, {ref_entity_sql("v.entity", "v.field")} AS ref_entity FROM ({_source_values("tripletex")}) v
    ),
    j AS (
      SELECT v.*, CASE WHEN ref_entity IS NULL THEN to_json(value)
                       ELSE {svenn_ref_json_sql("v.value", "v.ref_entity", "q")} END AS ref_json
      FROM v LEFT JOIN rules.pairs q ON q.tenant = $tenant AND q.entity = v.ref_entity
        AND q.tripletex_id = TRY_CAST(v.value AS BIGINT)
    )
    SELECT *, CASE WHEN ref_entity IS NOT NULL AND ref_json IS NULL THEN NULL ELSE value END AS sent
    FROM j
    """


def to_svenn_operations_sql() -> str:
    """G4 Tripletex → Svenn; references through links or ``$ref``; members per P12."""
    return f"""
    SELECT $tenant, 'creates', k.entity, 'svenn', 'create', NULL, k.tripletex_id,
           any_value(sent) FILTER (WHERE field = 'number'), any_value(k.label),
           json_merge_patch(
             {json_object_agg(api_name_sql("svenn"), svenn_json_sql(value="sent"), "sent IS NOT NULL")},
             CASE WHEN k.entity = 'project' THEN json_object('member_ids', coalesce(any_value(m.members), []::JSON[]))
                  ELSE json_object() END),
           list(field ORDER BY field) FILTER (WHERE sent IS NOT NULL),
           CASE WHEN k.entity = 'project' THEN ['G4', 'P12'] ELSE ['G4'] END,
           'new in Tripletex', NULL, json_group_object(field, {base_json_sql(value="sent")}), NULL
    FROM create_sv k LEFT JOIN members m ON k.entity = 'project' AND m.tripletex_id = k.tripletex_id
    GROUP BY k.entity, k.tripletex_id
    """


def p5_e2_set_number_operations_sql() -> str:
    """P5/E2: a generated number is written back to the record that lacked it — in Tripletex
    with ``set_number``; in Svenn as an ordinary update that settles the number in the base
    (the Tripletex create's base leaves it empty, so a failed write-back is retried)."""
    return f"""
    SELECT $tenant, 'creates', n.entity, n.side,
           CASE WHEN n.side = 'tripletex' THEN 'set_number' ELSE 'update' END,
           CASE WHEN n.side = 'svenn' THEN n.id END, CASE WHEN n.side = 'tripletex' THEN n.id END,
           n.number, l.label,
           CASE WHEN n.side = 'tripletex'
                THEN json_object('id', n.id, 'version', l.version,
                                 CASE n.entity WHEN 'project' THEN 'number' ELSE 'employeeNumber' END, n.number)
                ELSE json_object(CASE n.entity WHEN 'project' THEN 'display_id' ELSE 'employee_number' END,
                                 n.number) END,
           ['number'], [CASE n.entity WHEN 'project' THEN 'P5' ELSE 'E2' END],
           'number generated by the sync', l.version,
           CASE WHEN n.side = 'svenn' THEN json_object('number', n.number) END, NULL
    FROM rules.numbers n
    JOIN (SELECT 'svenn' AS side, * FROM ({_labels("svenn")})
          UNION ALL SELECT 'tripletex', * FROM ({_labels("tripletex")})) l
      ON l.side = n.side AND l.entity = n.entity AND l.id = n.id
    WHERE n.tenant = $tenant
    """


def create_findings_sql() -> str:
    """P10 defaulted manager, P11 customer left out, C5 no invoice e-mail (warnings); a
    Tripletex project created in Svenn without its customer or manager (P11, P10)."""
    return """
    SELECT $tenant, 'creates', entity, 'svenn', svenn_id, NULL, label, 'PROJECT_MANAGER_DEFAULTED',
           json_object('project_manager', value, 'default', sent)
    FROM create_tx WHERE field = 'project_manager_id' AND sent IS DISTINCT FROM value
    UNION ALL
    SELECT $tenant, 'creates', entity, 'svenn', svenn_id, NULL, label, 'PROJECT_CUSTOMER_NOT_SYNCED', NULL
    FROM create_tx WHERE field = 'customer_id' AND unmapped
    UNION ALL
    SELECT $tenant, 'creates', entity, 'svenn', svenn_id, NULL, label, 'CUSTOMER_MISSING_INVOICE_EMAIL', NULL
    FROM create_tx WHERE entity = 'customer' AND field = 'email' AND value IS NULL
    UNION ALL
    SELECT $tenant, 'creates', entity, 'tripletex', NULL, tripletex_id, label,
           CASE field WHEN 'customer_id' THEN 'PROJECT_CUSTOMER_NOT_SYNCED'
                ELSE 'PROJECT_MANAGER_NOT_SYNCED' END,
           json_object('tripletex_' || field, TRY_CAST(value AS BIGINT))
    FROM create_sv WHERE entity = 'project' AND ref_entity IS NOT NULL
      AND value IS NOT NULL AND sent IS NULL
    """


def p12_members_sql() -> str:
    """P12: a Tripletex project's participants as Svenn member ids (linked, or ``$ref`` to an
    employee this plan creates in Svenn); unsynced participants, and those deleted in Svenn
    (Svenn refuses them), have no access."""
    return """
    SELECT pr.id AS tripletex_id,
           list(CASE WHEN q.svenn_id IS NOT NULL THEN to_json(q.svenn_id)
                     ELSE json_object('$ref', json_object('entity', 'employee', 'tripletex_id', q.tripletex_id))
                END ORDER BY q.svenn_id NULLS LAST, q.tripletex_id) AS members,
           list_sort(list(q.svenn_id) FILTER (WHERE q.svenn_id IS NOT NULL)) AS member_ids,
           bool_or(q.svenn_id IS NULL) AS pending
    FROM staging.tripletex_projects pr, unnest(pr.member_ids) AS u(employee_id)
    JOIN rules.pairs q ON q.tenant = $tenant AND q.entity = 'employee'
      AND q.tripletex_id = u.employee_id AND (q.svenn_id IS NOT NULL OR q.kind = 'create_in_svenn')
    WHERE pr.tenant = $tenant AND NOT EXISTS (
      SELECT 1 FROM staging.svenn_employees d
      WHERE d.tenant = $tenant AND d.deleted AND d.id = q.svenn_id)
    GROUP BY pr.id
    """


def g12_guard_sql() -> str:
    """G12: per entity, this run's creates (both directions) against its active links. An
    entity is held when its creates exceed the tenant's share of its links and reach its
    minimum count, unless an operator's 'confirm_creates' approval waits to be used. A first
    sync is never held: the entity must have had links when a run last finished, so a first
    sync cut short (G5) still completes on the next run."""
    return """
    WITH creates AS (
      SELECT entity, count(*) AS creates FROM rules.operations
      WHERE tenant = $tenant AND step = 'creates' AND operation = 'create' GROUP BY entity
    ),
    finished AS (
      SELECT max(finished_at) AS finished_at FROM sync.runs
      WHERE tenant = $tenant AND outcome IN ('success', 'partial')
    ),
    links AS (
      SELECT entity, count(*) AS links,
             count(*) FILTER (WHERE linked_at <= (SELECT finished_at FROM finished)) AS settled_links
      FROM sync.links WHERE tenant = $tenant AND state = 'active' GROUP BY entity
    ),
    confirmed AS (
      SELECT count(*) > 0 AS ok FROM sync.approvals
      WHERE tenant = $tenant AND action = 'confirm_creates' AND consumed_by_run IS NULL
    )
    SELECT c.entity, c.creates, coalesce(l.links, 0) AS links,
           coalesce(l.settled_links, 0) > 0 AND c.creates > $create_threshold * l.links
             AND c.creates >= $create_min_records AND NOT (SELECT ok FROM confirmed) AS held
    FROM creates c LEFT JOIN links l USING (entity)
    """


def g12_hold_sql() -> str:
    """Hold every write of a held entity's new records: the create and the generated number
    written back to its source (P5, E2), which only serves the create."""
    return """
    UPDATE rules.operations AS o SET held_reason = 'mass_create'
    FROM g12 WHERE g12.held AND o.tenant = $tenant AND o.step = 'creates' AND o.entity = g12.entity
      AND EXISTS (SELECT 1 FROM rules.pairs p WHERE p.tenant = o.tenant AND p.entity = o.entity
                  AND p.kind IN ('create_in_svenn', 'create_in_tripletex')
                  AND (p.svenn_id = o.svenn_id OR p.tripletex_id = o.tripletex_id))
    """


def g12_findings_sql() -> str:
    return """
    SELECT $tenant, 'creates', entity, NULL, NULL, NULL, NULL, 'MASS_CREATE_HELD',
           json_object('rule_id', 'G12', 'creates', creates, 'links', links,
                       'threshold', $create_threshold, 'min_records', $create_min_records)
    FROM g12 WHERE held
    """


def _params(step: StepInput) -> dict[str, Any]:
    config = step.config
    defaults = tenant_defaults(step.conn, step.tenant, config)
    return {
        "pending_can_manage": config.employee_user_type in ("EXTENDED", "STANDARD"),
        "default_pm": defaults.project_manager_id,
        "user_type": config.employee_user_type,
        "department_id": defaults.department_id,
        "create_threshold": config.mass_create_threshold,
        "create_min_records": config.mass_create_min_records,
    }


def _write(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, int]:
    tenant, where = params["tenant"], "AND step = 'creates'"
    conn.execute(f"DELETE FROM rules.operations WHERE tenant = ? {where}", [tenant])
    for sql in (
        p5_e2_set_number_operations_sql(),
        to_tripletex_operations_sql(),
        to_svenn_operations_sql(),
    ):
        insert_rows(conn, "rules.operations", sql, params)
    findings = replace_rows(conn, "rules.findings", tenant, create_findings_sql(), params, where)
    guard = g12_guard_sql()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE g12 AS {guard}", bind(guard, params))
    conn.execute(g12_hold_sql(), bind(g12_hold_sql(), params))
    findings += insert_rows(conn, "rules.findings", g12_findings_sql(), params)
    conn.execute("DROP TABLE g12")
    return {"operations": count_rows(conn, "rules.operations", tenant, where), "findings": findings}


creates = rule_step(
    "creates",
    [rules_key("pairs"), rules_key("numbers")],
    "Create operations for eligible unmatched records on either side (G4), keys always set "
    "(P5, E2 set_number), with P10, P11, C5, E4 and P12 applied; their warnings. An "
    "unusual number of creates of an entity is held for an operator (G12, MASS_CREATE_HELD).",
    params=_params,
    scratch=(
        ("create_tx", p10_p11_to_tripletex_sql),
        ("create_sv", to_svenn_values_sql),
        ("members", p12_members_sql),
    ),
    write=_write,
    preview_sql="SELECT entity, target, operation, held_reason, count(*) AS operations "
    "FROM rules.operations "
    "WHERE tenant = $tenant AND step = 'creates' GROUP BY ALL ORDER BY ALL",
)
