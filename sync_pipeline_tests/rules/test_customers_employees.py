"""Customer rules C1–C7 and employee rules E1–E5 of SYNC-RULES.md as the plan shows them."""

import pytest

CUSTOMER_BASE = {
    "number": "500",
    "name": "Fjord AS",
    "email": None,
    "phone": None,
    "organization_number": None,
    "is_active": True,
}
EMPLOYEE_BASE = {
    "number": "7",
    "first_name": "Kari",
    "last_name": "Li",
    "email": None,
    "phone": None,
}


def _linked_customer(rules, svenn=None, tripletex=None, base=None):
    rules.svenn.customer(1, **{"number": "500", "name": "Fjord AS", **(svenn or {})})
    rules.tripletex.customer(
        71, **{"number": "500", "name": "Fjord AS", "version": 3, **(tripletex or {})}
    )
    rules.link("customer", 1, 71, {**CUSTOMER_BASE, **(base or {})})


def _linked_employee(rules, svenn=None, tripletex=None):
    rules.svenn.employee(1, **{"number": "7", "last_name": "Li", **(svenn or {})})
    rules.tripletex.employee(
        41, **{"number": "7", "last_name": "Li", "version": 2, **(tripletex or {})}
    )
    rules.link("employee", 1, 41, EMPLOYEE_BASE)


def test_C1_customer_number_must_be_a_positive_int32(rules):
    for i, number in enumerate(["K-12", "0", "2147483648", None, "12a"], start=1):
        rules.svenn.customer(i, number=number)
    rules.svenn.customer(9, number="2147483647", email="a@b.no")
    res = rules.run()
    assert [(r["operation"], r["svenn_id"], r["payload"]["customerNumber"]) for r in res.plan] == [
        ("create", 9, 2147483647)
    ]
    assert res.codes() == [("CUSTOMER_NON_NUMERIC_ID", "customer", i, None) for i in range(1, 6)]
    assert res.findings[0]["message"] == "Kunde har ikke numerisk ID."


def test_C2_inactive_customers_are_not_created_on_either_side(rules):
    rules.svenn.customer(1, number="500", is_active=False)
    rules.tripletex.customer(72, number="501", is_active=False)
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [
        ("CUSTOMER_INACTIVE_SKIPPED", "customer", 1, None),
        ("CUSTOMER_INACTIVE_SKIPPED", "customer", None, 72),
    ]


def test_C3_svenn_inactivation_is_never_sent_and_warns_until_they_agree(rules):
    _linked_customer(rules, svenn={"is_active": False, "phone": "+47 5"})
    res = rules.run()
    assert res.brief() == [
        ("customer", "tripletex", "update", 1, 71, {"id": 71, "version": 3, "phoneNumber": "+47 5"})
    ]
    assert res.codes() == [("CUSTOMER_INACTIVATE_IN_TRIPLETEX", "customer", 1, 71)]
    assert res.findings[0]["message"] == "Kunden må settes inaktiv i Tripletex."
    # Once Tripletex is inactive too, they agree: no write, no warning, the base follows.
    rules.tripletex.records["customer"][0]["is_active"] = False
    rules.svenn.records["customer"][0]["phone"] = None
    res = rules.run()
    assert [(r["target"], r["operation"], r["base_after"]) for r in res.plan] == [
        ("state", "update", {"is_active": False})
    ]
    assert res.findings == []


def test_C3_first_match_with_inactive_svenn_customer_does_not_inactivate_tripletex(rules):
    rules.svenn.customer(1, number="500", name="Fjord AS", is_active=False)
    rules.tripletex.customer(71, number="500", name="Fjord AS")
    res = rules.run()
    assert [(r["target"], r["operation"]) for r in res.plan] == [
        ("state", "link"),
        ("svenn", "update"),
    ]
    assert res.plan[1]["payload"] == {"is_active": True}  # G3: Tripletex wins on a first match


def test_C4_svenn_reactivation_reactivates_tripletex(rules):
    _linked_customer(rules, tripletex={"is_active": False}, base={"is_active": False})
    rules.svenn.records["customer"][0]["is_active"] = True
    res = rules.run()
    assert res.brief() == [
        ("customer", "tripletex", "update", 1, 71, {"id": 71, "version": 3, "isInactive": False})
    ]
    assert "C4" in res.plan[0]["rule_ids"]


def test_C5_customer_created_in_tripletex_gets_invoice_by_email(rules):
    rules.svenn.customer(1, number="500", name="Fjord AS", email="faktura@fjord.no", phone="+47 1")
    rules.svenn.customer(2, number="501", name="Uten E-post AS")
    res = rules.run()
    assert res.brief() == [
        (
            "customer",
            "tripletex",
            "create",
            1,
            None,
            {
                "customerNumber": 500,
                "name": "Fjord AS",
                "email": "faktura@fjord.no",
                "phoneNumber": "+47 1",
                "isInactive": False,
                "invoiceSendMethod": "EMAIL",
                "invoiceEmail": "faktura@fjord.no",
            },
        ),
        (
            "customer",
            "tripletex",
            "create",
            2,
            None,
            {"customerNumber": 501, "name": "Uten E-post AS", "isInactive": False},
        ),
    ]
    assert res.codes() == [("CUSTOMER_MISSING_INVOICE_EMAIL", "customer", 2, None)]


def test_C6_svenn_customer_deleted_detaches_and_never_deletes_in_tripletex(rules):
    rules.complete_extracts()
    _linked_customer(rules, svenn={"deleted": True}, tripletex={"name": "Endret"})
    res = rules.run()
    assert [(r["target"], r["operation"]) for r in res.plan] == [("state", "detach")]
    assert res.plan[0]["rule_ids"] == ["C6", "G7"]


def test_C7_tripletex_inactivation_reaches_svenn(rules):
    _linked_customer(rules, tripletex={"is_active": False})
    res = rules.run()
    assert res.brief() == [("customer", "svenn", "update", 1, 71, {"is_active": False})]
    assert "C7" in res.plan[0]["rule_ids"]


@pytest.mark.lake
def test_C7_tripletex_customer_deleted_deletes_in_svenn_despite_a_svenn_edit(rules):
    rules.complete_extracts()
    _linked_customer(rules, svenn={"name": "Endret i Svenn", "version": 9})
    rules.tripletex.records["customer"].clear()
    res = rules.run()
    # the link is detached by the delete's outcome, never by a row of its own (C7)
    assert [(r["target"], r["operation"], r["expected_version"]) for r in res.plan] == [
        ("svenn", "delete", 9),
    ]


def test_C6_a_svenn_customer_missing_from_a_complete_listing_is_not_deleted(rules):
    """Svenn deletes softly: only a tombstone says a record is gone, never its absence."""
    rules.complete_extracts()
    _linked_customer(rules)
    rules.svenn.records["customer"].clear()
    res = rules.run()
    assert res.plan == [] and res.findings == []


def test_E1_svenn_employee_without_surname_is_not_created_in_tripletex(rules):
    rules.svenn.employee(1, number="7", last_name=None)
    res = rules.run()
    assert res.plan == []
    assert res.codes() == [("EMPLOYEE_MISSING_SURNAME", "employee", 1, None)]


def test_E2_tripletex_employee_without_number_gets_one_written_to_both_systems(rules):
    rules.svenn.employee(1, number="12", last_name="Li")
    rules.tripletex.employee(41, number="12", last_name="Li")
    rules.tripletex.employee(45, number=None, first_name="Per", last_name="Ny", version=4)
    res = rules.run()
    assert res.brief()[1:] == [
        (
            "employee",
            "tripletex",
            "set_number",
            None,
            45,
            {"id": 45, "version": 4, "employeeNumber": "13"},
        ),
        (
            "employee",
            "svenn",
            "create",
            None,
            45,
            {"employee_number": "13", "first_name": "Per", "last_name": "Ny"},
        ),
    ]


def test_E3_inactive_svenn_employee_is_not_created_and_its_edits_are_held(rules):
    rules.svenn.employee(2, number="8", is_active=False)
    _linked_employee(
        rules, svenn={"is_active": False, "phone": "+47 9"}, tripletex={"email": "kari@firma.no"}
    )
    res = rules.run()
    assert res.brief() == [("employee", "svenn", "update", 1, 41, {"email": "kari@firma.no"})]
    assert res.codes() == [
        ("EMPLOYEE_INACTIVE_SKIPPED", "employee", 1, 41),
        ("EMPLOYEE_INACTIVE_SKIPPED", "employee", 2, None),
    ]


def test_E4_employee_created_in_tripletex_gets_user_type_and_department(rules):
    rules.config["employee_user_type"] = "STANDARD"
    rules.tripletex.employee(
        40, number="1", last_name="Eier", user_type="EXTENDED", department_id=3
    )
    rules.svenn.employee(1, number="1", last_name="Eier")
    rules.svenn.employee(2, number="2", first_name="Per", last_name="Ny", email="per@firma.no")
    res = rules.run()
    (create,) = res.ops("employee", "create")
    assert create["payload"] == {
        "employeeNumber": "2",
        "firstName": "Per",
        "lastName": "Ny",
        "email": "per@firma.no",
        "userType": "STANDARD",
        "department": {"id": 3},
    }
    rules.config.update(employee_user_type="NO_ACCESS", default_department_id=5)
    (create,) = rules.run().ops("employee", "create")
    assert create["payload"]["userType"] == "NO_ACCESS"
    assert create["payload"]["department"] == {"id": 5}


def test_E4_employee_missing_in_tripletex_only_detaches(rules):
    rules.complete_extracts()
    _linked_employee(rules)
    rules.tripletex.records["employee"].clear()
    res = rules.run()
    assert [(r["target"], r["operation"]) for r in res.plan] == [("state", "detach")]
    # derived from a Tripletex listing: detached only once a GET by id proves it gone
    assert res.plan[0]["payload"] == {"verify": "tripletex_gone"}
    assert res.plan[0]["rule_ids"] == ["E4", "G7"]


def test_E4_a_svenn_employee_missing_from_a_complete_listing_is_not_detached(rules):
    rules.complete_extracts()
    _linked_employee(rules)
    rules.svenn.records["employee"].clear()
    assert rules.run().plan == []


def test_E5_employees_reach_tripletex_projects_through_participation_only(rules):
    _linked_employee(rules)
    rules.svenn.project(5, number="100", member_ids=[1], name="Bad")
    rules.tripletex.project(95, number="100", member_ids=[], name="Bad")
    rules.link(
        "project",
        5,
        95,
        {
            "number": "100",
            "name": "Bad",
            "start_date": "2026-01-05",
            "end_date": None,
            "status": "active",
            "customer_id": None,
            "project_manager_id": None,
        },
        origin="tripletex",
    )
    res = rules.run()
    assert res.brief() == [("project", "svenn", "update", 5, 95, {"member_ids": []})]


@pytest.mark.lake
def test_E2_svenn_employee_without_number_is_created_with_one_and_it_is_written_back(rules):
    rules.tripletex.employee(41, number="12", last_name="Li")
    rules.svenn.employee(1, number="12", last_name="Li")
    rules.svenn.employee(2, number=None, first_name="Per", last_name="Ny", version=5)
    res = rules.run()
    create, write_back = res.plan[0], res.plan[1]
    assert (create["operation"], create["svenn_id"], create["payload"]["employeeNumber"]) == (
        "create",
        2,
        "13",
    )
    assert create["base_after"]["number"] is None  # settled by the write-back below
    assert (write_back["target"], write_back["operation"], write_back["payload"]) == (
        "svenn",
        "update",
        {"employee_number": "13"},
    )
    assert write_back["base_after"] == {"number": "13"} and write_back["expected_version"] == 5
