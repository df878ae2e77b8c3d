"""G10 for linked records, the article's messages, and the design card's frames (issue 11).

A rule that blocks a change of a linked pair logs the same finding as for an unlinked
record, named by both ids; every failing eligibility check and every matched pair of a
run can be queried (``sync.eligibility_checks``, ``sync.matches``).
"""

import pytest

from sync_pipeline.assets.rules import step
from sync_pipeline.model import CODES
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline_tests.rules.conftest import TENANT

PROJECT_BASE = {
    "number": "100",
    "name": "Bad",
    "start_date": "2026-01-05",
    "end_date": None,
    "status": "active",
    "customer_id": None,
    "project_manager_id": 41,
}


def _employee(rules, svenn_id, tripletex_id, number, user_type="EXTENDED", **svenn):
    rules.svenn.employee(svenn_id, **{"number": number, "last_name": "Li", **svenn})
    rules.tripletex.employee(tripletex_id, number=number, last_name="Li", user_type=user_type)
    base = {"number": number, "first_name": "Kari", "last_name": "Li", "email": None, "phone": None}
    rules.link("employee", svenn_id, tripletex_id, base)


def _customer(rules, svenn_id, tripletex_id, number):
    rules.svenn.customer(svenn_id, number=number, name=f"Kunde {svenn_id}")
    rules.tripletex.customer(tripletex_id, number=number, name=f"Kunde {svenn_id}")
    base = {
        "number": number,
        "name": f"Kunde {svenn_id}",
        "email": None,
        "phone": None,
        "organization_number": None,
        "is_active": True,
    }
    rules.link("customer", svenn_id, tripletex_id, base)


def _project(rules, svenn_id, tripletex_id, number, svenn=None, tripletex=None, base=None):
    values = {"number": number, "name": "Bad", "project_manager_id": 1}
    rules.svenn.project(svenn_id, **{**values, **(svenn or {})})
    rules.tripletex.project(
        tripletex_id,
        **{**values, "project_manager_id": 41, "version": 3, **(tripletex or {})},
    )
    rules.link(
        "project", svenn_id, tripletex_id, {**PROJECT_BASE, "number": number, **(base or {})}
    )


def _query(rules, sql, *params):
    with SyncDuckDB(database=rules.db).get_connection() as conn:
        return conn.execute(sql, list(params)).fetchall()


def test_P1_C1_E1_article_messages(rules):
    """The help article's "Vanlige feil", word for word."""
    rules.svenn.project(1, number="100", start_date=None)
    rules.svenn.customer(2, number="ABC")
    rules.svenn.employee(3, number="9", last_name=None)
    res = rules.run()
    messages = {f["code"]: f["message"] for f in res.findings}
    assert messages == {
        "PROJECT_MISSING_START_DATE": "Prosjekt mangler startdato.",
        "CUSTOMER_NON_NUMERIC_ID": "Kunde har ikke numerisk ID.",
        "EMPLOYEE_MISSING_SURNAME": "Ansatt mangler etternavn.",
    }
    assert {c: CODES[c].message for c in messages} == messages


def test_G10_linked_blocks_are_findings_named_by_both_ids(rules):
    """P1 start date cleared, E1 surname cleared, P10 manager without access, a Svenn manager
    that is not synced: nothing is written and each block is a finding with both ids."""
    _employee(rules, 1, 41, "7")
    _employee(rules, 2, 42, "8", user_type="NO_ACCESS")
    _employee(rules, 3, 43, "9", last_name=None)  # E1: surname cleared in Svenn
    rules.svenn.employee(4, number="10", last_name=None)  # not synced (E1)
    _project(rules, 5, 95, "100", svenn={"start_date": None})  # P1
    _project(rules, 6, 96, "101", svenn={"project_manager_id": 2})  # P10: no access
    _project(rules, 7, 97, "102", svenn={"project_manager_id": 4})  # P10: not synced
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [
        ("EMPLOYEE_MISSING_SURNAME", "employee", 3, 43),
        ("EMPLOYEE_MISSING_SURNAME", "employee", 4, None),
        ("PROJECT_MANAGER_DEFAULTED", "project", 6, 96),
        ("PROJECT_MANAGER_DEFAULTED", "project", 7, 97),
        ("PROJECT_MISSING_START_DATE", "project", 5, 95),
    ]
    p1 = next(f for f in res.findings if f["code"] == "PROJECT_MISSING_START_DATE")
    assert (p1["severity"], p1["rule_id"], p1["side"]) == ("error", "P1", "svenn")
    assert p1["details"] == {"rule_id": "P1", "fields": ["start_date"]}


@pytest.mark.lake
def test_G10_findings_of_a_linked_record_name_both_ids_whichever_rule_found_it(rules):
    """An excluded linked record (C1: its number edited to letters in Svenn) is named by
    its link's Tripletex id too."""
    _customer(rules, 1, 71, "500")
    rules.svenn.records["customer"][0]["number"] = "50O"
    res = rules.run()
    assert res.codes() == [("CUSTOMER_NON_NUMERIC_ID", "customer", 1, 71)]


def test_P11_linked_project_customer_changed_to_an_unsynced_one_syncs_without_customer(rules):
    _employee(rules, 1, 41, "7")
    _customer(rules, 2, 72, "500")
    rules.svenn.customer(3, number="ABC")  # C1: not synced
    _project(
        rules,
        5,
        95,
        "100",
        svenn={"customer_id": 3},
        tripletex={"customer_id": 72},
        base={"customer_id": 72},
    )
    res = rules.run()
    assert res.brief() == [
        ("project", "tripletex", "update", 5, 95, {"id": 95, "version": 3, "customer": None})
    ]
    assert res.plan[0]["base_after"] == {"customer_id": None}
    assert ("PROJECT_CUSTOMER_NOT_SYNCED", "project", 5, 95) in res.codes()

    # applied: the block lasts, so the warning stays; nothing more is written (G6)
    rules.tripletex.records["project"][0]["customer_id"] = None
    rules.links[-1]["base"] = rules.links[-1]["base"].replace(
        '"customer_id": 72', '"customer_id": null'
    )
    res = rules.run()
    assert res.plan == []
    assert ("PROJECT_CUSTOMER_NOT_SYNCED", "project", 5, 95) in res.codes()

    # lifted: the synced customer again reaches Tripletex, the warning resolves
    rules.svenn.records["project"][0]["customer_id"] = 2
    res = rules.run()
    assert res.brief() == [
        ("project", "tripletex", "update", 5, 95, {"id": 95, "version": 3, "customer": {"id": 72}})
    ]
    assert [c for c in res.codes() if c[1] == "project"] == []


def test_P11_G3_first_match_with_an_unsynced_svenn_customer_takes_tripletex_customer(rules):
    """A new match takes Tripletex's customer into Svenn (G3) instead of keeping an unsynced
    one, which the next run would read as a change to clear in Tripletex."""
    _employee(rules, 1, 41, "7")
    _customer(rules, 2, 72, "500")
    rules.svenn.customer(3, number="ABC")
    rules.svenn.project(5, number="100", name="Bad", customer_id=3, project_manager_id=1)
    rules.tripletex.project(95, number="100", name="Bad", customer_id=72, project_manager_id=41)
    res = rules.run()
    assert ("project", "svenn", "update", 5, 95, {"customer_id": 2}) in res.brief()
    assert ("PROJECT_CUSTOMER_NOT_SYNCED", "project", 5, 95) in res.codes()


def test_G10_eligibility_frames_every_failing_check(rules):
    """sync.eligibility_checks holds every failing check of a record in the run, not only the
    first one that rules.eligibility keeps."""
    rules.svenn.project(1, number="10/2", start_date=None, parent_id=9)  # P2, P6, P1
    rules.svenn.project(9, number="10")
    rules.svenn.customer(2, number="ABC", is_active=False)  # C1, C2
    rules.svenn.employee(3, number="9", last_name=None, is_active=False)  # E3, E1
    rules.tripletex.project(91, number="77", is_internal=True)  # P3
    rules.tripletex.customer(81, number="600")
    rules.tripletex.customer(82, number="600")  # G3 DUPLICATE_KEY
    res = rules.run()
    rows = _query(
        rules,
        "SELECT entity, side, id, rule_id, code, effect FROM sync.eligibility_checks "
        "WHERE tenant = ? AND run_id = ? ORDER BY ALL",
        TENANT,
        res.run_id,
    )
    assert rows == [
        ("customer", "svenn", 2, "C1", "CUSTOMER_NON_NUMERIC_ID", "excluded"),
        ("customer", "svenn", 2, "C2", "CUSTOMER_INACTIVE_SKIPPED", "create_blocked"),
        ("customer", "tripletex", 81, "G3", "DUPLICATE_KEY", "excluded"),
        ("customer", "tripletex", 82, "G3", "DUPLICATE_KEY", "excluded"),
        ("employee", "svenn", 3, "E1", "EMPLOYEE_MISSING_SURNAME", "create_blocked"),
        ("employee", "svenn", 3, "E3", "EMPLOYEE_INACTIVE_SKIPPED", "create_blocked"),
        ("project", "svenn", 1, "P1", "PROJECT_MISSING_START_DATE", "create_blocked"),
        ("project", "svenn", 1, "P2", "PROJECT_IS_SUBPROJECT", "excluded"),
        ("project", "svenn", 1, "P6", "PROJECT_INVALID_NUMBER", "excluded"),
        ("project", "tripletex", 91, "P3", "PROJECT_INTERNAL_SKIPPED", "create_blocked"),
    ]
    # per run: a second run adds its own frame, the first stays queryable
    second = rules.run(write=False)
    runs = _query(
        rules,
        "SELECT run_id, count(*) FROM sync.eligibility_checks WHERE tenant = ? GROUP BY run_id",
        TENANT,
    )
    assert dict(runs) == {res.run_id: len(rows), second.run_id: len(rows)}


def test_G3_matched_frame_queryable(rules, monkeypatch):
    """sync.matches: each run's pairs and how they matched — linked, key or e-mail."""
    _employee(rules, 1, 41, "7")  # linked
    rules.svenn.employee(2, number="8", email="Per@Firma.no")
    rules.tripletex.employee(42, number="18", email="per@firma.no")  # e-mail match
    rules.svenn.customer(3, number="500")
    rules.tripletex.customer(73, number="500")  # key match
    rules.svenn.customer(4, number="501")  # created, not matched: not in the frame
    first = rules.run()
    frame = _query(
        rules,
        "SELECT entity, svenn_id, tripletex_id, key, via, kind FROM sync.matches "
        "WHERE tenant = ? AND run_id = ? ORDER BY ALL",
        TENANT,
        first.run_id,
    )
    assert frame == [
        ("customer", 3, 73, "500", "key", "matched"),
        ("employee", 1, 41, "7", "linked", "linked"),
        ("employee", 2, 42, "18", "email", "matched"),
    ]
    monkeypatch.setattr(step, "FRAME_RUNS_KEPT", 2)
    second = rules.run(write=False)
    third = rules.run(write=False)
    kept = _query(rules, "SELECT DISTINCT run_id FROM sync.matches WHERE tenant = ?", TENANT)
    assert {r for (r,) in kept} == {second.run_id, third.run_id}  # older runs pruned
