"""Matching (G3) and the fate of every record: linked, matched now, or to be created (G4).

Employees, customers and projects are matched independently by key (references do
not take part in the key), so the order of G3 only matters for the merge, which reads
all matches at once. Employees without a key match fall back to a case-insensitive
e-mail match when the address is unique among the unmatched on both sides. Records
of a detached link are never matched or created again (P8, C6).
"""

from typing import Any

import duckdb

from sync_pipeline.assets.rules.eligibility import key_sql
from sync_pipeline.assets.rules.step import (
    count_rows,
    insert_rows,
    replace_rows,
    rule_step,
    rules_key,
)
from sync_pipeline.model import ENTITIES, staging_table

_CANDIDATES = """
cand AS (
  SELECT * FROM rules.eligibility
  WHERE tenant = $tenant AND excluded IS NULL AND NOT linked
),
paired AS (
  SELECT entity, 'svenn' AS side, svenn_id AS id FROM rules.pairs
  WHERE tenant = $tenant AND svenn_id IS NOT NULL
  UNION ALL
  SELECT entity, 'tripletex', tripletex_id FROM rules.pairs
  WHERE tenant = $tenant AND tripletex_id IS NOT NULL
)"""


def linked_pairs_sql() -> str:
    """The active links: their pairs keep syncing by id, whatever their keys became."""
    return """
    SELECT tenant, entity, svenn_id, tripletex_id, key, 'linked', origin, NULL
    FROM sync.links WHERE tenant = $tenant AND state = 'active'
    """


def g3_key_matches_sql() -> str:
    """G3: unlinked eligible records with the same key on both sides."""
    return f"""
    WITH {_CANDIDATES}
    SELECT s.tenant, s.entity, s.id, t.id, s.key, 'matched', 'matched', 'key'
    FROM cand s JOIN cand t
      ON s.side = 'svenn' AND t.side = 'tripletex' AND s.entity = t.entity AND s.key = t.key
    """


def g3_email_matches_sql() -> str:
    """G3: employees left unmatched by key, paired by a case-insensitive unique e-mail."""
    return f"""
    WITH {_CANDIDATES},
    open AS (
      SELECT c.side, c.id, c.key, lower(trim(st.email)) AS email
      FROM cand c JOIN staging.svenn_employees st
        ON c.side = 'svenn' AND st.tenant = c.tenant AND st.id = c.id
      WHERE c.entity = 'employee'
      UNION ALL
      SELECT c.side, c.id, c.key, lower(trim(tt.email))
      FROM cand c JOIN staging.tripletex_employees tt
        ON c.side = 'tripletex' AND tt.tenant = c.tenant AND tt.id = c.id
      WHERE c.entity = 'employee'
    ),
    unmatched AS (
      SELECT o.* FROM open o ANTI JOIN paired p
        ON p.entity = 'employee' AND p.side = o.side AND p.id = o.id
      WHERE NULLIF(o.email, '') IS NOT NULL
    ),
    unique_mail AS (
      SELECT * FROM unmatched QUALIFY count(*) OVER (PARTITION BY side, email) = 1
    )
    SELECT $tenant, 'employee', s.id, t.id, coalesce(t.key, s.key), 'matched', 'matched', 'email'
    FROM unique_mail s JOIN unique_mail t
      ON s.side = 'svenn' AND t.side = 'tripletex' AND s.email = t.email
    """


def _tombstones_sql() -> str:
    return "\nUNION ALL ".join(
        f"SELECT '{e}' AS entity, s.id, {key_sql(e, 's.number')} AS key FROM {staging_table('svenn', e)} s "
        f"WHERE s.tenant = $tenant AND s.deleted AND NOT EXISTS (SELECT 1 FROM sync.links l "
        f"WHERE l.tenant = s.tenant AND l.entity = '{e}' AND l.svenn_id = s.id)"
        for e in ENTITIES
    )


def p8_c6_tombstone_matches_sql() -> str:
    """G3 with P8/C6: a Tripletex record whose only Svenn twin was deleted in Svenn is paired
    with that tombstone (then detached), not created in Svenn again."""
    return f"""
    WITH {_CANDIDATES},
    tomb AS (SELECT * FROM ({_tombstones_sql()}) QUALIFY count(*) OVER (PARTITION BY entity, key) = 1)
    SELECT t.tenant, t.entity, tomb.id, t.id, t.key, 'matched_deleted', 'matched', 'key'
    FROM cand t JOIN tomb ON t.side = 'tripletex' AND tomb.entity = t.entity AND tomb.key = t.key
    ANTI JOIN paired p ON p.entity = t.entity AND p.side = 'tripletex' AND p.id = t.id
    """


def g4_creates_sql() -> str:
    """G4: eligible records still unpaired are created on the other side — unless a rule
    blocks it (P1, P3, C2, E1, E3) or the key is already taken there (it would duplicate)."""
    return f"""
    WITH {_CANDIDATES}
    SELECT c.tenant, c.entity,
           CASE WHEN c.side = 'svenn' THEN c.id END, CASE WHEN c.side = 'tripletex' THEN c.id END,
           c.key, CASE WHEN c.side = 'svenn' THEN 'create_in_tripletex' ELSE 'create_in_svenn' END,
           c.side, NULL
    FROM cand c
    ANTI JOIN paired p ON p.entity = c.entity AND p.side = c.side AND p.id = c.id
    ANTI JOIN (SELECT DISTINCT entity, side, key FROM rules.eligibility
               WHERE tenant = $tenant AND key IS NOT NULL) o
      ON o.entity = c.entity AND o.side <> c.side AND o.key = c.key
    WHERE c.create_blocked IS NULL
    """


def unpaired_findings_sql() -> str:
    """Why an unpaired record is not created: its blocking rule, or its key taken (G3)."""
    return f"""
    WITH {_CANDIDATES}
    SELECT e.tenant, 'matching', e.entity, e.side,
           CASE WHEN e.side = 'svenn' THEN e.id END, CASE WHEN e.side = 'tripletex' THEN e.id END,
           e.label, coalesce(e.create_blocked, 'DUPLICATE_KEY'),
           CASE WHEN e.create_blocked IS NULL
                THEN json_object('key', e.key, 'reason', 'key already used on the other side')
                ELSE json_object('key', e.key) END
    FROM cand e
    ANTI JOIN paired p ON p.entity = e.entity AND p.side = e.side AND p.id = e.id
    """


def _write(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, int]:
    tenant = params["tenant"]
    conn.execute("DELETE FROM rules.pairs WHERE tenant = ?", [tenant])
    for sql in (
        linked_pairs_sql(),
        g3_key_matches_sql(),
        g3_email_matches_sql(),
        p8_c6_tombstone_matches_sql(),
        g4_creates_sql(),
    ):
        insert_rows(conn, "rules.pairs", sql, params)
    findings = replace_rows(
        conn, "rules.findings", tenant, unpaired_findings_sql(), params, "AND step = 'matching'"
    )
    return {"pairs": count_rows(conn, "rules.pairs", tenant), "findings": findings}


pairs = rule_step(
    "pairs",
    [rules_key("eligibility")],
    "The fate of every record: active link, new match by key or e-mail (G3), or a create "
    "on the other side (G4); findings for records that stay unpaired.",
    write=_write,
    preview_sql="SELECT entity, kind, via, count(*) AS pairs FROM rules.pairs "
    "WHERE tenant = $tenant GROUP BY ALL ORDER BY ALL",
)
