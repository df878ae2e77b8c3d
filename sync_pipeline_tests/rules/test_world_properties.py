"""Properties of the plan over generated worlds: deterministic, canonical-only, safe writes."""

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_pipeline.generator import generate_world
from sync_pipeline.model import FIELDS

#: What a body may hold besides the canonical fields (SYNC-RULES §0).
_EXTRA = {
    ("tripletex", "update"): {"id", "version"},
    ("tripletex", "set_number"): {"id", "version"},
    ("tripletex", "create"): {"userType", "department", "invoiceSendMethod", "invoiceEmail"},
    ("svenn", "create"): {"member_ids", "is_active"},
    ("svenn", "update"): {"member_ids"},
}


@functools.cache
def _world(seed: int):
    return generate_world(seed, "demo")


def _strip(plan):
    return [{k: v for k, v in row.items() if k != "run_id"} for row in plan]


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(min_value=1, max_value=10_000), review=st.booleans())
def test_G5_G6_planning_twice_from_the_same_inputs_gives_the_same_plan(
    tmp_path_factory, seed, review
):
    from sync_pipeline_tests.rules.conftest import Rules

    rules = Rules(tmp_path_factory.mktemp("world"), world=_world(seed))
    rules.config["mode"] = "review" if review else "active"
    first = rules.run()
    second = rules.run(write=False)
    assert first.plan, "a generated world always needs links and creates"
    assert _strip(first.plan) == _strip(second.plan)
    assert [f | {"run_id": None} for f in first.findings] == [
        f | {"run_id": None} for f in second.findings
    ]


def test_G3_P4_C3_plan_over_a_world_writes_only_canonical_fields_never_isInternal_or_inactivation(
    rules,
):
    world = _world(2026)
    rules.world = world
    res = rules.run()
    canonical = {
        (e, target): {getattr(f, target) for f in fields}
        for e, fields in FIELDS.items()
        for target in ("svenn", "tripletex")
    }
    for row in res.plan:
        if row["target"] == "state":
            continue
        assert row["operation"] != "delete" or row["target"] == "svenn", (
            row
        )  # never a Tripletex DELETE
        body = row["payload"] or {}
        allowed = canonical[(row["entity"], row["target"])] | _EXTRA.get(
            (row["target"], row["operation"]), set()
        )
        assert set(body) <= allowed, row
        assert "isInternal" not in body
        assert body.get("isInactive") is not True, row  # C3
        if row["operation"] == "create":
            assert row["key"], row  # G4: the key is always sent
    # Every pair the generator made to be linked is linked by the first sync (G3).
    links = {(r["entity"], r["svenn_id"], r["tripletex_id"]) for r in res.ops(operation="link")}
    expected = {(e, s, t) for e, pairs in world.pairs.items() for s, t in pairs}
    assert links == expected
    # Every rule case of the world shows up as its finding (no silent skips, G10).
    codes = {f["rule_id"] for f in res.findings}
    assert {"P1", "P2", "P3", "P6", "C1", "C2", "E1", "E3", "G3"} <= codes


_NAMES = st.sampled_from(["Fjord AS", "Fjord Bygg AS", "Fjord Rør AS"])
_TIMES = st.one_of(st.none(), st.sampled_from([1, 2, 3]))


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases=st.lists(st.tuples(_NAMES, _NAMES, _NAMES, _TIMES, _TIMES), min_size=1, max_size=12))
def test_G2_three_way_merge_matches_its_definition_field_by_field(tmp_path_factory, cases):
    """Per linked customer: base, Svenn and Tripletex name and change times → the one write
    (or none) and the conflict the spec prescribes."""
    from datetime import UTC, datetime

    from sync_pipeline_tests.rules.conftest import Rules

    def when(hour):
        return None if hour is None else datetime(2026, 3, 1, hour, tzinfo=UTC)

    rules = Rules(tmp_path_factory.mktemp("g2"))
    expected_writes, expected_conflicts = set(), set()
    for i, (base, svenn, tripletex, s_time, t_time) in enumerate(cases, start=1):
        number = str(1000 + i)
        rules.svenn.customer(i, number=number, name=svenn, modified_at=when(s_time))
        rules.tripletex.customer(100 + i, number=number, name=tripletex, modified_at=when(t_time))
        rules.link("customer", i, 100 + i, {"number": number, "name": base, "is_active": True})
        s_changed, t_changed = svenn != base, tripletex != base
        if s_changed and t_changed and svenn != tripletex:
            svenn_wins = s_time is not None and t_time is not None and s_time > t_time
            winner = "svenn" if svenn_wins else "tripletex"
            expected_conflicts.add((i, winner))
            expected_writes.add((i, "tripletex", svenn) if svenn_wins else (i, "svenn", tripletex))
        elif s_changed and t_changed:
            expected_writes.add((i, "state", svenn))
        elif s_changed:
            expected_writes.add((i, "tripletex", svenn))
        elif t_changed:
            expected_writes.add((i, "svenn", tripletex))
    res = rules.run()
    writes = {(r["svenn_id"], r["target"], r["base_after"]["name"]) for r in res.plan}
    assert writes == expected_writes
    assert len(res.plan) == len(expected_writes)  # one row per pair at most
    assert {(c["svenn_id"], c["winner"]) for c in res.conflicts} == expected_conflicts
