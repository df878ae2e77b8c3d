"""Number generation (P5, E2): a key for every project or employee that would be left without
one — created without one, or a linked/matched pair whose merged number is empty (both sides
without, e.g. an e-mail match, or the number cleared on one side); a pair's number is written
to both systems, so an empty number is never written to Svenn (the merge holds that write).

The next number is the smallest integer greater than every purely numeric number in
either system — every staged record counts, sub-projects, excluded and deleted ones too,
and the keys of existing links — so it can never collide. Numbers are handed out in
Tripletex-id order (then Svenn-id order), a pure function of the snapshots and the links:
planning twice before applying gives the same numbers.
"""

from sync_pipeline.assets.rules.step import replace_rows, rule_step, rules_key
from sync_pipeline.model import SIDES, Entity, staging_table

NUMBERED: tuple[Entity, ...] = ("project", "employee")


def _numeric_max_sql(entity: Entity) -> str:
    sources = [
        f"SELECT trim(number) AS n FROM {staging_table(side, entity)} WHERE tenant = $tenant"
        for side in SIDES
    ]
    sources.append(
        f"SELECT trim(key) FROM sync.links WHERE tenant = $tenant AND entity = '{entity}'"
    )
    return f"""
    SELECT '{entity}' AS entity, coalesce(max(TRY_CAST(n AS HUGEINT)), 0) AS top
    FROM ({" UNION ALL ".join(sources)}) WHERE regexp_full_match(n, '[0-9]+')"""


def p5_e2_numbers_sql() -> str:
    """P5 (projects) and E2 (employees): number the keyless records the plan creates, and the
    pairs the merge would leave without a number (one number for both records)."""
    tops = " UNION ALL ".join(_numeric_max_sql(e) for e in NUMBERED)
    return f"""
    WITH top AS ({tops}),
    keyless AS (
      SELECT entity, tripletex_id, svenn_id
      FROM rules.pairs
      WHERE tenant = $tenant AND key IS NULL
        AND kind IN ('create_in_svenn', 'create_in_tripletex') AND entity IN ('project', 'employee')
      UNION ALL
      SELECT entity, tripletex_id, svenn_id
      FROM rules.decisions
      WHERE tenant = $tenant AND field = 'number' AND merged IS NULL
        AND entity IN ('project', 'employee')
    ),
    numbered AS (
      SELECT k.*, CAST(t.top + row_number() OVER (
               PARTITION BY k.entity ORDER BY k.tripletex_id IS NULL, k.tripletex_id, k.svenn_id)
             AS VARCHAR) AS number
      FROM keyless k JOIN top t USING (entity)
    )
    SELECT $tenant, entity, 'tripletex', tripletex_id, number FROM numbered
    WHERE tripletex_id IS NOT NULL
    UNION ALL
    SELECT $tenant, entity, 'svenn', svenn_id, number FROM numbered WHERE svenn_id IS NOT NULL
    """


numbers = rule_step(
    "numbers",
    [rules_key("pairs"), rules_key("merge")],
    "Numbers generated for Tripletex/Svenn projects and employees created without one, or "
    "linked/matched without one on both sides (P5, E2): unique across both systems and "
    "stable until applied.",
    write=lambda conn, params: {
        "numbers": replace_rows(
            conn, "rules.numbers", params["tenant"], p5_e2_numbers_sql(), params
        )
    },
    preview_sql="SELECT entity, side, id, number FROM rules.numbers WHERE tenant = $tenant "
    "ORDER BY ALL",
)
