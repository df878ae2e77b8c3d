"""P12/E5: access to a Tripletex-created project in Svenn follows its Tripletex participants.

For a link of origin ``tripletex`` whose records both live, the Svenn project's
``member_ids`` are the linked Svenn employees among the Tripletex participants; when the
two sets differ the plan replaces the Svenn list (one-way: Svenn members never reach
Tripletex). Projects created from Tripletex in this plan carry their members already.
"""

from sync_pipeline.assets.rules.creates import p12_members_sql
from sync_pipeline.assets.rules.step import replace_rows, rule_step, rules_key


def p12_member_updates_sql() -> str:
    return f"""
    WITH m AS ({p12_members_sql()})
    SELECT $tenant, 'members', 'project', 'svenn', 'update', p.svenn_id, p.tripletex_id, p.key,
           sp.label, json_object('member_ids', coalesce(m.members, []::JSON[])), ['member_ids'],
           ['P12', 'E5'], 'participants changed in Tripletex', sp.version, NULL, NULL
    FROM rules.pairs p
    JOIN sync.links l ON l.tenant = p.tenant AND l.entity = 'project' AND l.state = 'active'
      AND l.svenn_id = p.svenn_id AND l.tripletex_id = p.tripletex_id AND l.origin = 'tripletex'
    JOIN rules.eligibility es ON es.tenant = p.tenant AND es.entity = 'project'
      AND es.side = 'svenn' AND es.id = p.svenn_id AND es.excluded IS NULL
    JOIN rules.eligibility et ON et.tenant = p.tenant AND et.entity = 'project'
      AND et.side = 'tripletex' AND et.id = p.tripletex_id AND et.excluded IS NULL
    JOIN staging.svenn_projects sp ON sp.tenant = p.tenant AND sp.id = p.svenn_id
    LEFT JOIN m ON m.tripletex_id = p.tripletex_id
    WHERE p.tenant = $tenant AND p.kind = 'linked'
      AND (coalesce(m.pending, false)
           OR coalesce(m.member_ids, []) <> list_sort(coalesce(sp.member_ids, [])))
    """


members = rule_step(
    "members",
    [rules_key("pairs")],
    "Svenn members of Tripletex-created projects follow the Tripletex participants (P12, E5).",
    write=lambda conn, params: {
        "operations": replace_rows(
            conn,
            "rules.operations",
            params["tenant"],
            p12_member_updates_sql(),
            params,
            "AND step = 'members'",
        )
    },
    preview_sql="SELECT svenn_id, tripletex_id, payload FROM rules.operations "
    "WHERE tenant = $tenant AND step = 'members' ORDER BY svenn_id",
)
