"""General rules G1–G10 of SYNC-RULES.md as the plan shows them."""

from datetime import UTC, datetime

import pytest

from sync_pipeline.model import CODES
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline_tests.rules.conftest import TENANT

NEW = datetime(2026, 3, 1, tzinfo=UTC)
OLD = datetime(2026, 2, 1, tzinfo=UTC)


def _linked_customer(rules, base=None, svenn=None, tripletex=None):
    base = {
        "number": "500",
        "name": "Fjord AS",
        "email": None,
        "phone": None,
        "organization_number": None,
        "is_active": True,
        **(base or {}),
    }
    rules.svenn.customer(1, **{"number": "500", "name": "Fjord AS", **(svenn or {})})
    rules.tripletex.customer(
        71, **{"number": "500", "name": "Fjord AS", "version": 4, **(tripletex or {})}
    )
    rules.link("customer", 1, 71, base)


@pytest.mark.lake
def test_G1_G2_svenn_edit_reaches_tripletex_with_only_the_changed_field(rules):
    _linked_customer(rules, svenn={"phone": "+47 999"})
    res = rules.run()
    assert res.brief() == [
        (
            "customer",
            "tripletex",
            "update",
            1,
            71,
            {"id": 71, "version": 4, "phoneNumber": "+47 999"},
        )
    ]
    assert res.plan[0]["base_after"] == {"phone": "+47 999"}
    assert res.plan[0]["fields"] == ["phone"] and res.plan[0]["expected_version"] == 4
    assert res.findings == [] and res.conflicts == []


def test_G1_G2_tripletex_edit_reaches_svenn(rules):
    _linked_customer(rules, tripletex={"name": "Fjord Bygg AS"})
    res = rules.run()
    assert res.brief() == [("customer", "svenn", "update", 1, 71, {"name": "Fjord Bygg AS"})]


def test_G2_same_field_edited_on_both_sides_newest_wins_and_conflict_is_recorded(rules):
    _linked_customer(
        rules,
        svenn={"name": "Fjord Svenn AS", "modified_at": NEW},
        tripletex={"name": "Fjord Tripletex AS", "modified_at": OLD},
    )
    res = rules.run()
    assert res.brief() == [
        (
            "customer",
            "tripletex",
            "update",
            1,
            71,
            {"id": 71, "version": 4, "name": "Fjord Svenn AS"},
        )
    ]
    (conflict,) = res.conflicts
    assert (conflict["field"], conflict["winner"]) == ("name", "svenn")
    assert (conflict["base_value"], conflict["svenn_value"], conflict["tripletex_value"]) == (
        "Fjord AS",
        "Fjord Svenn AS",
        "Fjord Tripletex AS",
    )
    assert res.codes() == [("EDIT_CONFLICT", "customer", 1, 71)]
    assert res.findings[0]["severity"] == "info" and res.findings[0]["rule_id"] == "G2"


def test_G2_conflict_without_timestamp_goes_to_tripletex(rules):
    _linked_customer(
        rules,
        svenn={"name": "Fjord Svenn AS", "modified_at": NEW},
        tripletex={"name": "Fjord Tripletex AS", "modified_at": None},
    )
    res = rules.run()
    assert res.brief() == [("customer", "svenn", "update", 1, 71, {"name": "Fjord Tripletex AS"})]
    assert res.conflicts[0]["winner"] == "tripletex"


def test_G2_conflict_policy_svenn_wins_overrides_timestamps(rules):
    rules.config["conflict_policy"] = "svenn_wins"
    _linked_customer(
        rules,
        svenn={"name": "Fjord Svenn AS", "modified_at": OLD},
        tripletex={"name": "Fjord Tripletex AS", "modified_at": NEW},
    )
    res = rules.run()
    assert res.brief() == [
        (
            "customer",
            "tripletex",
            "update",
            1,
            71,
            {"id": 71, "version": 4, "name": "Fjord Svenn AS"},
        )
    ]


def test_G2_both_sides_changed_alike_only_moves_the_base(rules):
    _linked_customer(rules, svenn={"email": "post@fjord.no"}, tripletex={"email": "post@fjord.no"})
    res = rules.run()
    assert [(r["target"], r["operation"], r["payload"], r["base_after"]) for r in res.plan] == [
        ("state", "update", None, {"email": "post@fjord.no"})
    ]
    assert res.conflicts == []


def test_G2_references_compare_through_links(rules):
    for svenn_id, tripletex_id, number in ((1, 71, "500"), (2, 72, "501")):
        rules.svenn.customer(svenn_id, number=number, name=number)
        rules.tripletex.customer(tripletex_id, number=number, name=number)
        rules.link(
            "customer",
            svenn_id,
            tripletex_id,
            {"number": number, "name": number, "is_active": True},
        )
    # Svenn ids 1/2 and Tripletex ids 71/72 differ, yet the unchanged reference is no change.
    rules.svenn.project(5, number="100", name="Bad", customer_id=2)
    rules.tripletex.project(95, number="100", name="Bad", customer_id=72)
    base = {
        "number": "100",
        "name": "Bad",
        "start_date": "2026-01-05",
        "end_date": None,
        "status": "active",
        "customer_id": 72,
        "project_manager_id": None,
    }
    rules.link("project", 5, 95, base)
    res = rules.run()
    assert [r for r in res.plan if r["entity"] == "project"] == []
    # Now the Svenn side moves the project to customer 1 → Tripletex gets customer 71.
    rules.svenn.records["project"][0]["customer_id"] = 1
    res = rules.run()
    assert res.brief() == [
        ("project", "tripletex", "update", 5, 95, {"id": 95, "version": 1, "customer": {"id": 71}})
    ]
    assert res.plan[0]["base_after"] == {"customer_id": 71}


def test_G3_first_match_by_key_tripletex_wins_and_empty_fields_fill_from_svenn(rules):
    rules.svenn.customer(1, number=" 500 ", name="Fjord", email="post@fjord.no", phone="+47 1")
    rules.tripletex.customer(
        71, number="500", name="Fjord AS", email=None, phone="+47 2", version=3
    )
    res = rules.run()
    assert res.brief() == [
        ("customer", "state", "link", 1, 71, {"origin": "matched", "via": "key"}),
        (
            "customer",
            "tripletex",
            "update",
            1,
            71,
            {"id": 71, "version": 3, "email": "post@fjord.no"},
        ),
        ("customer", "svenn", "update", 1, 71, {"name": "Fjord AS", "phone": "+47 2"}),
    ]
    link = res.plan[0]
    assert link["key"] == "500" and link["rule_ids"] == ["G3"]
    # The link's base holds what each side has *before* the updates land (G5).
    assert link["base_after"] == {
        "number": "500",
        "name": "Fjord",
        "email": None,
        "phone": "+47 1",
        "organization_number": None,
        "is_active": True,
    }


def test_G3_after_go_live_match_merges_field_by_field_newest_wins(rules):
    """After the entity's first sync (it has links), a new key match is G2 with no base: each
    differing non-empty field goes to the newer record; empty fields still fill in."""
    rules.link("customer", 9, 79, {"number": "509", "name": "Gammel", "is_active": True})
    rules.svenn.customer(9, number="509", name="Gammel")
    rules.tripletex.customer(79, number="509", name="Gammel")
    rules.svenn.customer(1, number="500", name="Fjord Bygg", phone="+47 1", modified_at=NEW)
    rules.tripletex.customer(
        71,
        number="500",
        name="Fjord AS",
        email="a@fjord.no",
        phone="+47 2",
        version=3,
        modified_at=OLD,
    )
    res = rules.run()
    assert [b for b in res.brief() if b[2] == "update"] == [
        (
            "customer",
            "tripletex",
            "update",
            1,
            71,
            {"id": 71, "version": 3, "name": "Fjord Bygg", "phoneNumber": "+47 1"},
        ),
        ("customer", "svenn", "update", 1, 71, {"email": "a@fjord.no"}),
    ]
    assert [(c["field"], c["winner"]) for c in res.conflicts] == [
        ("name", "svenn"),
        ("phone", "svenn"),
    ]


def test_G3_match_order_employees_customers_projects_and_references_use_the_new_links(rules):
    rules.svenn.employee(1, number="7", last_name="Li")
    rules.tripletex.employee(41, number="7", last_name="Li", user_type="EXTENDED")
    rules.svenn.customer(2, number="500", name="Fjord")
    rules.tripletex.customer(72, number="500", name="Fjord")
    rules.svenn.project(3, number="100", customer_id=2, project_manager_id=1)
    rules.tripletex.project(93, number="100", name="Prosjekt 3")
    res = rules.run()
    assert [(r["entity"], r["operation"], r["target"]) for r in res.plan] == [
        ("employee", "link", "state"),
        ("customer", "link", "state"),
        ("project", "link", "state"),
        ("project", "update", "tripletex"),
    ]
    assert res.plan[-1]["payload"] == {
        "id": 93,
        "version": 1,
        "customer": {"id": 72},
        "projectManager": {"id": 41},
    }


def test_G3_employee_matches_by_email_case_insensitively_when_keys_differ(rules):
    rules.svenn.employee(1, number=None, email="Kari.Nordmann@Firma.no ")
    rules.tripletex.employee(41, number="12", email="kari.nordmann@firma.no")
    res = rules.run()
    assert res.brief()[0] == (
        "employee",
        "state",
        "link",
        1,
        41,
        {"origin": "matched", "via": "email"},
    )
    assert res.brief()[1] == (
        "employee",
        "svenn",
        "update",
        1,
        41,
        {"employee_number": "12", "last_name": "Nordmann41", "email": "kari.nordmann@firma.no"},
    )


def test_G3_two_svenn_customers_with_the_same_number_are_not_linked_or_created(rules):
    rules.svenn.customer(1, number="500")
    rules.svenn.customer(2, number=" 500")
    rules.tripletex.customer(71, number="500")
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [
        ("DUPLICATE_KEY", "customer", 1, None),
        ("DUPLICATE_KEY", "customer", 2, None),
        ("DUPLICATE_KEY", "customer", None, 71),  # its twin in Svenn is ambiguous: not created
    ]
    assert res.findings[2]["details"]["reason"] == "key already used on the other side"
    assert res.findings[0]["message"] == CODES["DUPLICATE_KEY"].message
    assert res.findings[0]["severity"] == "error"


def test_G3_project_numbers_are_case_sensitive(rules):
    rules.svenn.project(1, number="A1")
    rules.tripletex.project(91, number="a1")
    res = rules.run()
    assert [(r["operation"], r["target"]) for r in res.plan] == [
        ("create", "tripletex"),
        ("create", "svenn"),
    ]


def test_G4_creates_send_the_key_and_the_whole_base(rules):
    rules.tripletex.customer(71, number="500", name="Fjord AS", email="post@fjord.no")
    res = rules.run()
    assert res.brief() == [
        (
            "customer",
            "svenn",
            "create",
            None,
            71,
            {
                "customer_number": "500",
                "name": "Fjord AS",
                "email": "post@fjord.no",
                "is_active": True,
            },
        )
    ]
    assert res.plan[0]["key"] == "500"
    assert res.plan[0]["base_after"] == {
        "number": "500",
        "name": "Fjord AS",
        "email": "post@fjord.no",
        "phone": None,
        "organization_number": None,
        "is_active": True,
    }


def test_G5_record_created_by_an_interrupted_run_is_matched_by_key_not_created_again(rules):
    # The previous run created Tripletex customer 71 from Svenn 1, then died before linking.
    rules.svenn.customer(1, number="500", name="Fjord AS")
    rules.tripletex.customer(71, number="500", name="Fjord AS")
    res = rules.run()
    assert [(r["operation"], r["target"]) for r in res.plan] == [("link", "state")]


def test_G6_nothing_changed_means_an_empty_plan(rules):
    _linked_customer(rules)
    rules.svenn.employee(1, number="7", first_name="Kari", last_name="N")
    rules.tripletex.employee(41, number="7", first_name="Kari", last_name="N")
    rules.link(
        "employee",
        1,
        41,
        {"number": "7", "first_name": "Kari", "last_name": "N", "email": None, "phone": None},
    )
    res = rules.run()
    assert res.plan == [] and res.findings == [] and res.conflicts == []


@pytest.mark.lake
def test_G7_mass_deletion_is_held_with_an_error_until_confirmed(rules):
    rules.config["mass_delete_threshold"] = 0.2
    rules.config["mass_delete_min_count"] = 3
    rules.complete_extracts()
    for i in range(1, 6):
        rules.svenn.customer(i, number=str(500 + i))
        base = {"number": str(500 + i), "name": f"Kunde {i}", "is_active": True}
        rules.link("customer", i, 70 + i, base)
        if i <= 3:  # 3 of 5 links lost in Tripletex = 60 % > 20 %
            continue
        rules.tripletex.customer(70 + i, number=str(500 + i), name=f"Kunde {i}")
    res = rules.run()
    assert {(r["operation"], r["apply"], r["held_reason"]) for r in res.plan} == {
        ("delete", False, "mass_delete"),
    }
    assert res.codes() == [("MASS_DELETE_HELD", "customer", None, None)]
    assert res.findings[0]["details"] == {"deletions": 3, "threshold": 0.2, "min_count": 3}
    rules.approvals.append("confirm_deletes")
    res = rules.run()
    assert {(r["operation"], r["apply"]) for r in res.plan} == {("delete", True)}
    assert len(res.plan) == 3 and res.findings == []


def _company_losing_in_tripletex(rules, projects: int, lost: int) -> None:
    """``projects`` linked projects of which the first ``lost`` are gone from Tripletex."""
    rules.complete_extracts()
    for i in range(1, projects + 1):
        rules.svenn.project(i, number=str(100 + i))
        base = {
            "number": str(100 + i),
            "name": f"Prosjekt {i}",
            "start_date": "2026-01-05",
            "end_date": None,
            "status": "active",
            "customer_id": None,
            "project_manager_id": None,
        }
        rules.link("project", i, 70 + i, base)
        if i > lost:
            rules.tripletex.project(70 + i, number=str(100 + i), name=f"Prosjekt {i}")


def test_G7_small_company_not_held(rules):
    """One of four projects deleted in Tripletex is 25 % of the links, above the 20 %
    threshold, but below the minimum count of 5: an everyday deletion, not held."""
    rules.config.pop("mass_delete_threshold")  # the defaults: 0.2 and 5
    _company_losing_in_tripletex(rules, projects=4, lost=1)
    res = rules.run()
    # the detach is the outcome of the accepted complete (P9), not a row of its own
    assert {(r["operation"], r["apply"], r["held_reason"]) for r in res.plan} == {
        ("complete", True, None),
    }
    assert "MASS_DELETE_HELD" not in {f["code"] for f in res.findings}


def test_G7_min_count_configurable(rules):
    """The minimum count is per tenant (``mass_delete_min_count`` in the tenants file)."""
    rules.config["mass_delete_threshold"] = 0.2
    _company_losing_in_tripletex(rules, projects=10, lost=4)  # 40 %, but 4 < 5
    assert all(r["apply"] for r in rules.run().plan)
    rules.config["mass_delete_min_count"] = 4
    res = rules.run()
    assert {(r["operation"], r["apply"], r["held_reason"]) for r in res.plan} == {
        ("complete", False, "mass_delete"),
    }
    assert res.codes() == [("MASS_DELETE_HELD", "project", None, None)]
    assert res.findings[0]["details"] == {"deletions": 4, "threshold": 0.2, "min_count": 4}


def test_G7_incomplete_extract_next_to_many_missing_records_deletes_nothing(rules):
    rules.extract("tripletex", "customer", complete=True)
    rules.extract("tripletex", "customer", complete=False)  # the latest one failed part-way
    for i in range(1, 30):
        rules.svenn.customer(i, number=str(500 + i))
        rules.link(
            "customer", i, 70 + i, {"number": str(500 + i), "name": f"Kunde {i}", "is_active": True}
        )
    res = rules.run()
    assert res.plan == [] and res.findings == []


def test_G8_every_tripletex_update_carries_the_version_read(rules):
    _linked_customer(rules, svenn={"phone": "1"}, tripletex={"version": 17})
    res = rules.run()
    (op,) = res.plan
    assert op["payload"]["version"] == 17 and op["expected_version"] == 17


def test_G9_review_mode_plans_everything_but_applies_nothing(rules):
    rules.config["mode"] = "review"
    rules.svenn.customer(1, number="500")
    rules.tripletex.customer(72, number="501")
    res = rules.run()
    assert len(res.plan) == 2
    assert {(r["apply"], r["held_reason"]) for r in res.plan} == {(False, "review")}
    rules.approvals.append("go_live")
    res = rules.run()
    assert {(r["apply"], r["held_reason"]) for r in res.plan} == {(True, None)}


def test_G9_the_review_decision_is_recorded_with_the_plan_even_when_it_is_empty(rules):
    """sync.plan is the only contract with apply: the decision travels with it, also for a
    run that plans nothing (apply must then still know whether the tenant is live)."""
    rules.config["mode"] = "review"

    def decision(run_id: str) -> list[tuple]:
        with SyncDuckDB(database=rules.db).get_connection() as conn:
            return conn.execute(
                "SELECT review FROM sync.plan_runs WHERE tenant = ? AND run_id = ?",
                [TENANT, run_id],
            ).fetchall()

    res = rules.run()
    assert res.plan == [] and decision(res.run_id) == [(True,)]
    rules.approvals.append("go_live")
    res = rules.run()
    assert res.plan == [] and decision(res.run_id) == [(False,)]


def test_G10_findings_carry_code_severity_rule_message_ids_and_label(rules):
    rules.svenn.employee(3, number="9", last_name=None, first_name="Ola")
    res = rules.run()
    (f,) = res.findings
    assert (f["code"], f["severity"], f["rule_id"], f["message"]) == (
        "EMPLOYEE_MISSING_SURNAME",
        "error",
        "E1",
        "Ansatt mangler etternavn.",
    )
    assert (f["entity"], f["side"], f["svenn_id"], f["record_label"]) == (
        "employee",
        "svenn",
        3,
        "9",
    )
    assert f["run_id"] == res.run_id


def test_G_plan_is_kept_per_run_and_the_same_inputs_give_the_same_plan(rules):
    rules.svenn.project(1, number=None)
    rules.tripletex.project(91, number=None)
    rules.svenn.customer(1, number="500")
    first = rules.run()
    second = rules.run(write=False)
    assert first.run_id != second.run_id
    strip = lambda plan: [{k: v for k, v in r.items() if k != "run_id"} for r in plan]  # noqa: E731
    assert strip(first.plan) == strip(second.plan)
