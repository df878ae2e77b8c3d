"""Project rules P1–P12 of SYNC-RULES.md as the plan shows them."""

from datetime import date

import pytest

from sync_pipeline.model import CODES
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline_tests.rules.conftest import TENANT

BASE = {
    "number": "100",
    "name": "Bad",
    "start_date": "2026-01-05",
    "end_date": None,
    "status": "active",
    "customer_id": None,
    "project_manager_id": None,
}


def _manager(rules, svenn_id=1, tripletex_id=41, user_type="EXTENDED", number="7"):
    rules.svenn.employee(svenn_id, number=number, last_name="Li")
    rules.tripletex.employee(tripletex_id, number=number, last_name="Li", user_type=user_type)
    rules.link(
        "employee",
        svenn_id,
        tripletex_id,
        {"number": number, "first_name": "Kari", "last_name": "Li", "email": None, "phone": None},
    )


def _linked_project(rules, svenn=None, tripletex=None, base=None, origin="matched"):
    rules.svenn.project(5, **{"number": "100", "name": "Bad", **(svenn or {})})
    rules.tripletex.project(
        95, **{"number": "100", "name": "Bad", "version": 2, **(tripletex or {})}
    )
    rules.link("project", 5, 95, {**BASE, **(base or {})}, origin=origin)


def test_P1_svenn_project_without_start_date_is_not_created_in_tripletex(rules):
    rules.svenn.project(1, number="100", start_date=None)
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [("PROJECT_MISSING_START_DATE", "project", 1, None)]
    assert res.findings[0]["message"] == "Prosjekt mangler startdato."


def test_P1_clearing_the_start_date_in_svenn_is_not_sent_to_tripletex(rules):
    _linked_project(rules, svenn={"start_date": None})
    assert rules.run().plan == []


def test_P2_svenn_sub_project_reusing_its_parents_number_is_skipped_and_no_duplicate(rules):
    _manager(rules)
    rules.svenn.project(1, number="100", project_manager_id=1)
    rules.svenn.project(2, number="100", parent_id=1, project_manager_id=1)
    res = rules.run()
    assert [(r["operation"], r["target"], r["svenn_id"]) for r in res.plan] == [
        ("create", "tripletex", 1)
    ]
    assert res.codes() == [("PROJECT_IS_SUBPROJECT", "project", 2, None)]
    assert res.findings[0]["severity"] == "info"


def test_P2_tripletex_sub_project_is_not_created_in_svenn(rules):
    rules.tripletex.project(91, number="100")
    rules.tripletex.project(92, number="100-1", parent_id=91)
    res = rules.run()
    assert [(r["operation"], r["tripletex_id"]) for r in res.plan] == [("create", 91)]
    assert res.codes() == [("PROJECT_IS_SUBPROJECT", "project", None, 92)]


def test_P3_internal_tripletex_project_is_not_created_in_svenn(rules):
    rules.tripletex.project(91, number="900", is_internal=True)
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [("PROJECT_INTERNAL_SKIPPED", "project", None, 91)]


def test_P4_svenn_project_links_to_internal_tripletex_project_without_changing_its_type(rules):
    rules.svenn.project(1, number="900", name="Intern tid", end_date=date(2026, 12, 31))
    rules.tripletex.project(91, number="900", name="Internt", is_internal=True)
    res = rules.run()
    assert res.brief() == [
        ("project", "state", "link", 1, 91, {"origin": "matched", "via": "key"}),
        (
            "project",
            "tripletex",
            "update",
            1,
            91,
            {"id": 91, "version": 1, "endDate": "2026-12-31"},
        ),
        ("project", "svenn", "update", 1, 91, {"name": "Internt"}),
    ]
    assert "P4" in res.plan[1]["rule_ids"]
    assert all("isInternal" not in (r["payload"] or {}) for r in res.plan)
    assert res.findings == []


@pytest.mark.lake
def test_P5_tripletex_project_without_number_gets_the_next_number_even_when_it_would_collide(rules):
    # 104 is the highest numeric number anywhere — on a Svenn sub-project and a deleted record.
    rules.svenn.project(1, number="100", name="A")
    rules.tripletex.project(90, number="100", name="A")
    rules.svenn.project(2, number="104", parent_id=1)
    rules.svenn.project(3, number=" 103 ", deleted=True)
    rules.tripletex.project(91, number="AB.7")
    rules.tripletex.project(95, number=None, name="Uten nummer", version=6)
    rules.tripletex.project(93, number=None, name="Også uten")
    res = rules.run()
    assert [r for r in res.brief() if r[2] in ("set_number", "create") and r[4] in (93, 95)] == [
        ("project", "tripletex", "set_number", None, 93, {"id": 93, "version": 1, "number": "105"}),
        (
            "project",
            "svenn",
            "create",
            None,
            93,
            {
                "display_id": "105",
                "name": "Også uten",
                "start_date": "2026-01-05",
                "status": "active",
                "member_ids": [],
            },
        ),
        ("project", "tripletex", "set_number", None, 95, {"id": 95, "version": 6, "number": "106"}),
        (
            "project",
            "svenn",
            "create",
            None,
            95,
            {
                "display_id": "106",
                "name": "Uten nummer",
                "start_date": "2026-01-05",
                "status": "active",
                "member_ids": [],
            },
        ),
    ]
    assert {r["key"] for r in res.plan if r["tripletex_id"] == 95} == {"106"}


def test_P6_svenn_number_with_other_characters_is_not_synced_but_letters_and_dots_are(rules):
    _manager(rules)
    rules.svenn.project(1, number="2026/14", project_manager_id=1)
    rules.svenn.project(2, number="Bø.12a", project_manager_id=1)
    res = rules.run()
    assert [(r["operation"], r["svenn_id"], r["payload"]["number"]) for r in res.plan] == [
        ("create", 2, "Bø.12a")
    ]
    assert res.codes() == [("PROJECT_INVALID_NUMBER", "project", 1, None)]


def test_P6_tripletex_number_with_other_characters_is_not_created_in_svenn(rules):
    rules.tripletex.project(91, number="2026/14")
    rules.tripletex.project(92, number="Bø.12a")
    res = rules.run()
    assert [(r["operation"], r["tripletex_id"], r["payload"]["display_id"]) for r in res.plan] == [
        ("create", 92, "Bø.12a")
    ]
    (finding,) = res.findings
    assert (finding["code"], finding["tripletex_id"], finding["details"]) == (
        "PROJECT_INVALID_NUMBER",
        91,
        {"key": "2026/14", "system": "Tripletex"},
    )


def test_P13_tripletex_offers_are_neither_created_nor_matched(rules):
    rules.svenn.project(1, number="T2", name="Tak")
    rules.tripletex.project(91, number="T1", is_offer=True)
    rules.tripletex.project(92, number="T2", name="Tak", is_offer=True)
    res = rules.run()
    assert [r for r in res.plan if r["tripletex_id"] in (91, 92)] == []
    assert ("PROJECT_IS_OFFER", "project", None, 91) in res.codes()
    assert ("PROJECT_IS_OFFER", "project", None, 92) in res.codes()


def test_P7_svenn_completed_closes_tripletex_and_tripletex_reopen_reopens_svenn(rules):
    _linked_project(rules, svenn={"status": "completed"})
    res = rules.run()
    assert res.brief() == [
        ("project", "tripletex", "update", 5, 95, {"id": 95, "version": 2, "isClosed": True})
    ]
    assert "P7" in res.plan[0]["rule_ids"]
    rules.svenn.records["project"].clear()
    rules.tripletex.records["project"].clear()
    rules.links.clear()
    _linked_project(
        rules,
        svenn={"status": "completed"},
        tripletex={"status": "active"},
        base={"status": "completed"},
    )
    res = rules.run()
    assert res.brief() == [("project", "svenn", "update", 5, 95, {"status": "active"})]


@pytest.mark.lake
def test_P8_svenn_project_deleted_detaches_and_writes_nothing_to_tripletex(rules):
    rules.complete_extracts()
    _linked_project(rules, svenn={"deleted": True}, tripletex={"name": "Endret i Tripletex"})
    res = rules.run()
    assert [(r["target"], r["operation"], r["rule_ids"]) for r in res.plan] == [
        ("state", "detach", ["P8", "G7"])
    ]


def test_P8_detached_link_is_never_recreated_from_tripletex(rules):
    rules.complete_extracts()
    rules.tripletex.project(95, number="100", name="Endret i Tripletex")
    rules.link("project", 5, 95, BASE, state="detached")
    assert rules.run().plan == []


def test_P9_tripletex_project_deleted_completes_svenn_project_and_detaches(rules):
    rules.complete_extracts()
    _linked_project(rules, svenn={"name": "Endret i Svenn", "version": 8})
    rules.tripletex.records["project"].clear()
    res = rules.run()
    assert [
        (r["target"], r["operation"], r["payload"], r["expected_version"]) for r in res.plan
    ] == [
        ("svenn", "complete", {"status": "completed"}, 8),  # detaches once Svenn accepted it
    ]


def test_P9_a_project_completed_in_svenn_already_is_detached_only_after_a_get(rules):
    rules.complete_extracts()
    _linked_project(rules, svenn={"status": "completed"}, base={"status": "completed"})
    rules.tripletex.records["project"].clear()
    res = rules.run()
    assert [(r["target"], r["operation"], r["payload"], r["rule_ids"]) for r in res.plan] == [
        ("state", "detach", {"verify": "tripletex_gone"}, ["P9", "G7"])
    ]


def test_P8_a_svenn_project_missing_from_a_complete_listing_is_not_detached(rules):
    rules.complete_extracts()
    _linked_project(rules)
    rules.svenn.records["project"].clear()
    res = rules.run()
    assert res.plan == [] and res.findings == []


def test_G13_link_detached_is_raised_every_run_while_the_link_stays_detached(rules):
    rules.complete_extracts()
    rules.tripletex.project(95, number="100", name="Endret i Tripletex")
    rules.link("project", 5, 95, BASE, state="detached")
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [("LINK_DETACHED", "project", 5, 95)]
    (finding,) = res.findings
    assert finding["severity"] == "warning" and finding["rule_id"] == "G13"
    assert finding["record_label"] == "100 Endret i Tripletex"
    assert finding["message"].startswith("Koblingen mellom Svenn og Tripletex er brutt")
    rules.links[0]["state"] = "active"  # re-attached (sync-pipeline relink)
    assert "LINK_DETACHED" not in [c[0] for c in rules.run().codes()]


def test_P10_manager_without_access_is_replaced_by_the_default_with_a_warning(rules):
    rules.config["default_project_manager_employee_number"] = "1"
    _manager(rules, 1, 41, user_type="NO_ACCESS", number="7")
    rules.tripletex.employee(42, number="1", last_name="Sjef", user_type="EXTENDED")
    rules.tripletex.employee(40, number="3", last_name="Annen", user_type="EXTENDED")
    rules.svenn.project(1, number="100", project_manager_id=1)
    res = rules.run()
    (create,) = res.ops("project", "create")
    assert create["payload"]["projectManager"] == {"id": 42}
    assert create["base_after"]["project_manager_id"] == 42
    assert [c for c in res.codes() if c[1] == "project"] == [
        ("PROJECT_MANAGER_DEFAULTED", "project", 1, None)
    ]


def test_P10_default_manager_is_the_user_the_integration_logs_in_as(rules):
    _manager(rules, 1, 41, user_type="NO_ACCESS", number="7")
    rules.tripletex.employee(40, number="3", last_name="Annen", user_type="EXTENDED")
    rules.tripletex.employee(44, number="4", last_name="Integrasjon", user_type="EXTENDED")
    rules.svenn.project(1, number="100", project_manager_id=1)
    rules._write()
    with SyncDuckDB(database=rules.db).get_connection() as conn:
        conn.execute("INSERT INTO sync.tenant_context VALUES (?, 44, 1, now())", [TENANT])
    (create,) = rules.run(write=False).ops("project", "create")
    assert create["payload"]["projectManager"] == {"id": 44}  # >whoAmI, not the lowest id


def test_P10_manager_with_access_is_used(rules):
    _manager(rules, 1, 41, user_type="STANDARD")
    rules.tripletex.employee(40, number="3", last_name="Annen", user_type="EXTENDED")
    rules.svenn.project(1, number="100", project_manager_id=1)
    res = rules.run()
    assert res.ops("project", "create")[0]["payload"]["projectManager"] == {"id": 41}
    assert res.findings == [] or all(f["entity"] != "project" for f in res.findings)


def test_P11_project_with_unsynced_customer_syncs_without_customer_and_warns(rules):
    _manager(rules)
    rules.svenn.customer(3, number="ABC")  # C1: not synced
    rules.svenn.project(1, number="100", customer_id=3, project_manager_id=1)
    res = rules.run()
    (create,) = res.ops("project", "create")
    assert "customer" not in create["payload"] and create["base_after"]["customer_id"] is None
    assert ("PROJECT_CUSTOMER_NOT_SYNCED", "project", 1, None) in res.codes()
    assert CODES["PROJECT_CUSTOMER_NOT_SYNCED"].severity == "warning"


def test_P11_project_customer_created_in_the_same_plan_is_referenced_by_ref(rules):
    _manager(rules)
    rules.svenn.customer(3, number="500")
    rules.svenn.project(1, number="100", customer_id=3, project_manager_id=1)
    res = rules.run()
    assert [(r["entity"], r["operation"]) for r in res.plan] == [
        ("customer", "create"),
        ("project", "create"),
    ]
    ref = {"$ref": {"entity": "customer", "svenn_id": 3}}
    assert (
        res.plan[1]["payload"]["customer"] == ref
        and res.plan[1]["base_after"]["customer_id"] == ref
    )


def test_P12_tripletex_participants_become_svenn_members_of_tripletex_created_projects(rules):
    _manager(rules, 1, 41)
    _manager(rules, 2, 42, number="8")
    rules.tripletex.employee(43, number="9", last_name="Ny")  # created in Svenn by this plan
    _linked_project(
        rules, svenn={"member_ids": [1]}, tripletex={"member_ids": [41, 42, 43]}, origin="tripletex"
    )
    res = rules.run()
    (update,) = res.ops("project", "update")
    assert update["payload"] == {
        "member_ids": [1, 2, {"$ref": {"entity": "employee", "tripletex_id": 43}}]
    }
    assert update["rule_ids"] == ["P12", "E5"] and update["seq"] == len(res.plan)


def test_P12_members_are_not_touched_for_projects_created_in_svenn(rules):
    _manager(rules, 1, 41)
    _linked_project(rules, svenn={"member_ids": [1]}, tripletex={"member_ids": []}, origin="svenn")
    assert rules.run().plan == []


def test_P12_project_created_from_tripletex_gets_its_participants_as_members(rules):
    _manager(rules, 1, 41)
    rules.tripletex.project(91, number="100", member_ids=[41], project_manager_id=41)
    res = rules.run()
    (create,) = res.ops("project", "create")
    assert create["payload"]["member_ids"] == [1] and create["payload"]["project_manager_id"] == 1


def test_P8_project_deleted_in_svenn_before_the_first_sync_is_not_recreated_from_tripletex(rules):
    rules.svenn.project(5, number="100", deleted=True)
    rules.tripletex.project(95, number="100", name="Fortsatt i Tripletex")
    res = rules.run()
    assert [
        (r["target"], r["operation"], r["svenn_id"], r["tripletex_id"], r["rule_ids"])
        for r in res.plan
    ] == [
        ("state", "link", 5, 95, ["P8", "G3"]),
        ("state", "detach", 5, 95, ["P8", "G3"]),
    ]


def test_P10_svenn_manager_change_to_an_employee_without_access_is_not_sent(rules):
    _manager(rules, 1, 41, user_type="NO_ACCESS")
    _manager(rules, 2, 42, user_type="EXTENDED", number="8")
    _linked_project(
        rules,
        svenn={"project_manager_id": 1},
        tripletex={"project_manager_id": 42},
        base={"project_manager_id": 42},
    )
    assert rules.run().plan == []  # Tripletex would refuse it (422); the link keeps its manager
    rules.svenn.records["project"][0]["project_manager_id"] = 2
    rules.tripletex.records["project"][0]["project_manager_id"] = 41
    res = rules.run()
    assert res.brief() == [("project", "svenn", "update", 5, 95, {"project_manager_id": 1})]


def test_P10_tripletex_assignable_managers_list_decides_not_the_user_type(rules):
    """Once the extract has landed ``/employee?assignableProjectManagers=true``, that list —
    not the userType — says who may manage projects."""
    rules.config["default_project_manager_employee_number"] = "1"
    _manager(rules, 1, 41, user_type="EXTENDED", number="7")  # not on the list
    rules.tripletex.employee(42, number="1", last_name="Sjef", user_type="NO_ACCESS")
    rules.svenn.project(1, number="100", project_manager_id=1)
    rules._write()
    with SyncDuckDB(database=rules.db).get_connection() as conn:
        conn.execute("INSERT INTO staging.tripletex_project_managers VALUES (?, 42)", [TENANT])
    res = rules.run(write=False)
    (create,) = res.ops("project", "create")
    assert create["payload"]["projectManager"] == {"id": 42}
    assert [c for c in res.codes() if c[1] == "project"] == [
        ("PROJECT_MANAGER_DEFAULTED", "project", 1, None)
    ]
