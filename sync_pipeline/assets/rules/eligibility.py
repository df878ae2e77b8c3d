"""Eligibility (P1, P2, P3, P6, P13, C1, C2, E1, E3, G3 DUPLICATE_KEY): which records may sync.

Two effects: *excluded* records take no part in matching, merging or creating (P2, P6,
C1, ambiguous keys); *create-blocked* records may still be matched to and linked with an
existing record on the other side but are never created there (P1, P3, C2, E1, E3) —
blocking their matching would make the other side's twin be created as a duplicate.
Each rule is a named predicate over the staged snapshot; the first that holds wins.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from sync_pipeline.assets.rules.canonical import customer_number_sql
from sync_pipeline.assets.rules.step import (
    STAGING_KEYS,
    StepInput,
    prune_frame,
    replace_rows,
    rule_step,
)
from sync_pipeline.model import ENTITIES, SIDES, Entity, Side, staging_table


@dataclass(frozen=True)
class Rule:
    rule_id: str
    code: str
    side: Side
    entity: Entity
    predicate: str  # SQL over the staging row
    effect: str  # 'excluded' | 'create_blocked'


def p13_offer() -> Rule:
    """P13: a Tripletex offer is not a project: never created in Svenn nor matched; a linked
    project that becomes an offer stops syncing (it is not deleted) until converted back."""
    return Rule(
        "P13", "PROJECT_IS_OFFER", "tripletex", "project", "coalesce(is_offer, false)", "excluded"
    )


def p2_subproject(side: Side) -> Rule:
    """P2: sub-projects are not synced in either direction (they may reuse the parent's number)."""
    return Rule("P2", "PROJECT_IS_SUBPROJECT", side, "project", "parent_id IS NOT NULL", "excluded")


def p6_invalid_number(side: Side) -> Rule:
    """P6: a project number may hold digits, letters (æøå too) and '.' only, on either side:
    such a Svenn project is not sent to Tripletex, such a Tripletex one not created in Svenn."""
    return Rule(
        "P6",
        "PROJECT_INVALID_NUMBER",
        side,
        "project",
        r"number IS NOT NULL AND NOT regexp_full_match(trim(number), '[0-9\p{L}.]+')",
        "excluded",
    )


def c1_non_numeric(side: Side) -> Rule:
    """C1: only customers with a numeric number fitting a positive int32 are synced."""
    return Rule(
        "C1",
        "CUSTOMER_NON_NUMERIC_ID",
        side,
        "customer",
        f"{customer_number_sql('number')} IS NULL",
        "excluded",
    )


def p1_missing_start_date() -> Rule:
    """P1: Tripletex requires a start date; such a Svenn project is not created there."""
    return Rule(
        "P1",
        "PROJECT_MISSING_START_DATE",
        "svenn",
        "project",
        "start_date IS NULL",
        "create_blocked",
    )


def p3_internal() -> Rule:
    """P3: internal Tripletex projects are not created in Svenn (P4 still links them)."""
    return Rule(
        "P3",
        "PROJECT_INTERNAL_SKIPPED",
        "tripletex",
        "project",
        "coalesce(is_internal, false)",
        "create_blocked",
    )


def c2_inactive(side: Side) -> Rule:
    """C2: inactive customers are not created on the other side."""
    return Rule(
        "C2",
        "CUSTOMER_INACTIVE_SKIPPED",
        side,
        "customer",
        "NOT coalesce(is_active, true)",
        "create_blocked",
    )


def e1_missing_surname() -> Rule:
    """E1: Tripletex requires a last name; such a Svenn employee is not created there."""
    return Rule(
        "E1", "EMPLOYEE_MISSING_SURNAME", "svenn", "employee", "last_name IS NULL", "create_blocked"
    )


def e3_inactive_employee() -> Rule:
    """E3: inactive Svenn employees are not created in Tripletex (the merge holds their edits)."""
    return Rule(
        "E3",
        "EMPLOYEE_INACTIVE_SKIPPED",
        "svenn",
        "employee",
        "NOT coalesce(is_active, true)",
        "create_blocked",
    )


RULES: tuple[Rule, ...] = (
    p13_offer(),
    p2_subproject("svenn"),
    p2_subproject("tripletex"),
    p6_invalid_number("svenn"),
    p6_invalid_number("tripletex"),
    c1_non_numeric("svenn"),
    c1_non_numeric("tripletex"),
    p1_missing_start_date(),
    p3_internal(),
    c2_inactive("svenn"),
    c2_inactive("tripletex"),
    e3_inactive_employee(),  # before E1: the merge reads E3 from create_blocked
    e1_missing_surname(),
)


def key_sql(entity: Entity, col: str = "number") -> str:
    """G3 keys: trimmed; customer numbers compared as integers."""
    return customer_number_sql(col) if entity == "customer" else f"NULLIF(trim({col}), '')"


def _first_code(side: Side, entity: Entity, effect: str) -> str:
    rules = [r for r in RULES if r.side == side and r.entity == entity and r.effect == effect]
    if not rules:
        return "NULL"
    return "CASE " + " ".join(f"WHEN {r.predicate} THEN '{r.code}'" for r in rules) + " END"


def _records_sql(side: Side, entity: Entity) -> str:
    """Live staged records with their key, link flag and the first rule that applies."""
    return f"""
    SELECT s.tenant, '{entity}' AS entity, '{side}' AS side, s.id, {key_sql(entity, "s.number")} AS key,
           s.label,
           EXISTS (SELECT 1 FROM sync.links l WHERE l.tenant = s.tenant AND l.entity = '{entity}'
                   AND l.{side}_id = s.id) AS linked,
           {_first_code(side, entity, "excluded")} AS excluded,
           {_first_code(side, entity, "create_blocked")} AS create_blocked
    FROM {staging_table(side, entity)} s
    WHERE s.tenant = $tenant AND NOT s.deleted"""


def g3_duplicate_keys_sql() -> str:
    """G3: a key held by more than one otherwise-eligible live record of a side is ambiguous;
    its unlinked records are excluded (linked ones keep syncing through their link)."""
    union = "\nUNION ALL ".join(_records_sql(side, e) for side in SIDES for e in ENTITIES)
    return f"""
    WITH r AS ({union}),
    dup AS (
      SELECT entity, side, key FROM r WHERE excluded IS NULL AND key IS NOT NULL
      GROUP BY ALL HAVING count(*) > 1
    )
    SELECT r.tenant, r.entity, r.side, r.id, r.key, r.label, r.linked,
           CASE WHEN r.excluded IS NULL AND NOT r.linked AND dup.key IS NOT NULL
                THEN 'DUPLICATE_KEY' ELSE r.excluded END AS excluded,
           r.create_blocked
    FROM r LEFT JOIN dup USING (entity, side, key)
    """


def eligibility_checks_sql() -> str:
    """The design card's eligibility frame: every failing check of every live record (not
    only the first, which is all ``rules.eligibility`` keeps), with DUPLICATE_KEY (G3)."""
    parts = [
        f"""
    SELECT e.tenant, $run_id, e.entity, e.side, e.id, e.key, e.label, e.linked,
           '{r.rule_id}', '{r.code}', '{r.effect}', $checked_at
    FROM (SELECT id FROM {staging_table(r.side, r.entity)}
          WHERE tenant = $tenant AND NOT deleted AND ({r.predicate})) s
    JOIN rules.eligibility e ON e.tenant = $tenant AND e.entity = '{r.entity}'
      AND e.side = '{r.side}' AND e.id = s.id"""
        for r in RULES
    ]
    parts.append("""
    SELECT tenant, $run_id, entity, side, id, key, label, linked, 'G3', 'DUPLICATE_KEY',
           'excluded', $checked_at
    FROM rules.eligibility WHERE tenant = $tenant AND excluded = 'DUPLICATE_KEY'""")
    return "\nUNION ALL ".join(parts)


_FINDINGS_SQL = """
SELECT tenant, 'eligibility', entity, side,
       CASE WHEN side = 'svenn' THEN id END, CASE WHEN side = 'tripletex' THEN id END,
       label, excluded,
       CASE WHEN excluded = 'PROJECT_INVALID_NUMBER'  -- P6: which system's number to fix
            THEN json_object('key', key, 'system', CASE side WHEN 'svenn' THEN 'Svenn' ELSE 'Tripletex' END)
            ELSE json_object('key', key) END
FROM rules.eligibility WHERE tenant = $tenant AND excluded IS NOT NULL
"""


def _params(step: StepInput) -> dict[str, Any]:
    return {"checked_at": datetime.now(UTC)}


def _write(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, int]:
    tenant = params["tenant"]
    rows = {
        "eligibility": replace_rows(
            conn, "rules.eligibility", tenant, g3_duplicate_keys_sql(), params
        ),
        "findings": replace_rows(
            conn, "rules.findings", tenant, _FINDINGS_SQL, params, "AND step = 'eligibility'"
        ),
        "checks": replace_rows(
            conn,
            "sync.eligibility_checks",
            tenant,
            eligibility_checks_sql(),
            params,
            f"AND run_id = '{params['run_id']}'",
        ),
    }
    prune_frame(conn, "sync.eligibility_checks", tenant, "checked_at")
    return rows


eligibility = rule_step(
    "eligibility",
    STAGING_KEYS,
    "Per staged record: excluded (P2, P6, P13, C1, DUPLICATE_KEY) or not to be created on the "
    "other side (P1, P3, C2, E1, E3); findings for the excluded ones; every failing check "
    "of the run in sync.eligibility_checks.",
    params=_params,
    write=_write,
    preview_sql="SELECT entity, side, coalesce(excluded, create_blocked, 'eligible') AS verdict, "
    "count(*) AS records FROM rules.eligibility WHERE tenant = $tenant GROUP BY ALL "
    "ORDER BY ALL",
)
