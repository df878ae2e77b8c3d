"""The executor against both sandboxes, on plan rows written as the rules would write them."""

from __future__ import annotations

import json

import pytest

from sync_pipeline.assets.apply.executor import UnsafeWriteError

R1 = "run-1"


def _department(env) -> int:
    return env.tripletex.list_all("/department", fields="id")[0]["id"]


def _owner(env) -> int:
    return env.tripletex.who_am_i()["employeeId"]


def _tx_customers(env, number: int) -> list[dict]:
    return env.tripletex.list_all(
        "/customer", {"customerAccountNumber": number}, "id,version,customerNumber,name"
    )


def _link_customer(env, svenn_id: int, tripletex_id: int, base: dict, tv: int, sv: int = 1):
    with env.db.get_connection() as conn:
        conn.execute(
            "INSERT INTO sync.links VALUES (?, 'customer', ?, ?, ?, 'matched', 'active', "
            "CAST(? AS JSON), ?, ?, now(), now())",
            [env.tenant, svenn_id, tripletex_id, base["number"], json.dumps(base), tv, sv],
        )


CUSTOMER_BASE = {
    "number": "501",
    "name": "Fjord Bygg AS",
    "email": "post@fjordbygg.no",
    "phone": None,
    "organization_number": None,
    "is_active": True,
}


@pytest.mark.lake
def test_G4_creates_run_in_dependency_order_with_refs_resolved_and_links_stored(apply_env):
    env = apply_env
    # P10: a NO_ACCESS employee may not manage projects, so the default manager is used
    manager_ref = {"$ref": {"entity": "employee", "tripletex_id": _owner(env)}}
    customer_ref = {"$ref": {"entity": "customer", "svenn_id": 21}}
    env.plan(
        R1,
        {
            "entity": "employee",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 11,
            "key": "101",
            "label": "101 Kari Nordmann",
            "payload": {
                "firstName": "Kari",
                "lastName": "Nordmann",
                "employeeNumber": "101",
                "userType": "NO_ACCESS",
                "department": {"id": _department(env)},
            },
            "base_after": {"number": "101", "first_name": "Kari", "last_name": "Nordmann"},
        },
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 21,
            "key": "501",
            "payload": {"name": "Fjord Bygg AS", "customerNumber": 501},
            "base_after": CUSTOMER_BASE,
        },
        {
            "entity": "customer",
            "target": "svenn",
            "operation": "create",
            "tripletex_id": 900,
            "key": "601",
            "payload": {"name": "Vik Rør", "customer_number": "601", "is_active": True},
            "base_after": {**CUSTOMER_BASE, "number": "601", "name": "Vik Rør"},
        },
        {
            "entity": "project",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 31,
            "key": "P1",
            "payload": {
                "name": "Bad",
                "number": "P1",
                "startDate": "2026-01-05",
                "projectManager": manager_ref,
                "customer": customer_ref,
            },
            "base_after": {
                "number": "P1",
                "customer_id": customer_ref,
                "project_manager_id": manager_ref,
            },
        },
    )
    report = env.execute(R1)

    assert report.successes == 4 and report.failures == 0
    employee = env.tripletex.list_all("/employee", {"employeeNumber": "101"}, "id")[0]
    customer = _tx_customers(env, 501)[0]
    project = env.tripletex.list_all(
        "/project", {"number": "P1"}, "id,customer(id),projectManager(id)"
    )[0]
    assert project["customer"]["id"] == customer["id"]
    assert project["projectManager"]["id"] == _owner(env)
    assert employee["id"] != _owner(env)
    (svenn_customer,) = [
        c for c in env.svenn.list_all("customers") if c["customer_number"] == "601"
    ]

    (project_link,) = env.links("project")
    assert project_link[:4] == (31, project["id"], "svenn", "active")
    # the base holds Tripletex ids for references (the link identity)
    assert json.loads(project_link[4])["customer_id"] == customer["id"]
    assert json.loads(project_link[4])["project_manager_id"] == _owner(env)
    assert {link[:3] for link in env.links("customer")} == {
        (21, customer["id"], "svenn"),
        (svenn_customer["id"], 900, "tripletex"),
    }
    states = env.query("SELECT DISTINCT state FROM sync.operations WHERE run_id = ?", R1)
    assert states == [("done",)]
    # one batch request per entity and system
    assert env.tripletex_sandbox.stats(env.tripletex_key)["writes"] == 3


def test_G10_a_rejected_record_is_bisected_out_of_its_batch_and_the_rest_land(apply_env):
    env = apply_env
    rows = [
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 100 + i,
            "key": str(700 + i),
            "label": f"{700 + i} Kunde {i}",
            "payload": {
                "name": f"Kunde {i}",
                "customerNumber": 700 + i,
                "email": "ikke-en-adresse" if i == 3 else f"k{i}@firma.no",
            },
            "base_after": {**CUSTOMER_BASE, "number": str(700 + i), "name": f"Kunde {i}"},
        }
        for i in range(6)
    ]
    env.plan(R1, *rows)
    report = env.execute(R1)

    assert report.successes == 5 and report.failures == 1
    for i in range(6):
        assert len(_tx_customers(env, 700 + i)) == (0 if i == 3 else 1)
    (finding,) = env.query(
        "SELECT code, severity, svenn_id, record_label, message, details FROM sync.findings"
    )
    code, severity, svenn_id, label, message, details = finding
    assert (code, severity, svenn_id, label) == ("API_REJECTED", "error", 103, "703 Kunde 3")
    assert "email: Ugyldig format." in message  # the API's own words
    details = json.loads(details)
    assert details["status"] == 422 and details["code"] == 18000 and details["request_id"]
    assert len(env.links("customer")) == 5
    assert env.query("SELECT state FROM sync.operations WHERE svenn_id = 103") == [("failed",)]


def test_G8_a_stale_tripletex_version_is_left_for_the_next_run_as_a_warning(apply_env):
    env = apply_env
    (created,) = env.tripletex.post_list(
        "/customer/list", [{"name": "Gammel", "customerNumber": 501}]
    )
    _link_customer(env, 21, created["id"], {**CUSTOMER_BASE, "name": "Gammel"}, created["version"])
    # someone edits the customer in Tripletex after the extract read it
    env.tripletex.put_list(
        "/customer/list",
        [{"id": created["id"], "version": created["version"], "name": "Endret i Tripletex"}],
    )
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "update",
            "svenn_id": 21,
            "tripletex_id": created["id"],
            "payload": {"name": "Endret i Svenn", "version": created["version"]},
            "fields": ["name"],
            "expected_version": created["version"],
            "base_after": {**CUSTOMER_BASE, "name": "Endret i Svenn"},
        },
    )
    report = env.execute(R1)

    assert report.failures == 1
    assert _tx_customers(env, 501)[0]["name"] == "Endret i Tripletex"  # nothing overwritten
    ((code, severity),) = env.query("SELECT code, severity FROM sync.findings")
    assert (code, severity) == ("CONCURRENT_EDIT", "warning")
    (link,) = env.links("customer")
    assert json.loads(link[4])["name"] == "Gammel"  # base untouched: next run re-merges


def test_G8_a_stale_svenn_version_gives_412_and_a_warning(apply_env):
    env = apply_env
    record = env.svenn.create("customers", {"name": "Gammel", "customer_number": "501"})
    env.svenn.update("customers", record["id"], {"name": "Endret i Svenn"})
    _link_customer(env, record["id"], 77, {**CUSTOMER_BASE, "name": "Gammel"}, 1, record["version"])
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "svenn",
            "operation": "update",
            "svenn_id": record["id"],
            "tripletex_id": 77,
            "payload": {"name": "Endret i Tripletex"},
            "fields": ["name"],
            "expected_version": record["version"],
            "base_after": {**CUSTOMER_BASE, "name": "Endret i Tripletex"},
        },
    )
    env.execute(R1)

    assert env.svenn.get("customers", record["id"])["name"] == "Endret i Svenn"
    assert env.query("SELECT code FROM sync.findings") == [("CONCURRENT_EDIT",)]


def test_G6_a_new_link_keeps_the_values_before_the_run_until_each_write_succeeds(apply_env):
    env = apply_env
    good, bad = env.tripletex.post_list(
        "/customer/list",
        [{"name": "God", "customerNumber": 801}, {"name": "Dårlig", "customerNumber": 802}],
    )
    # the second customer changes after the snapshot: its update will be refused (409)
    env.tripletex.put_list(
        "/customer/list", [{"id": bad["id"], "version": bad["version"], "phoneNumber": "1"}]
    )

    def pair(svenn_id: int, created: dict, name: str) -> list[dict]:
        # G3 first match: the Svenn e-mail fills Tripletex's empty one
        before = {**CUSTOMER_BASE, "number": str(created["customerNumber"]), "name": name}
        return [
            {
                "entity": "customer",
                "target": "state",
                "operation": "link",
                "svenn_id": svenn_id,
                "tripletex_id": created["id"],
                "key": before["number"],
                "base_after": {**before, "email": None},
            },
            {
                "entity": "customer",
                "target": "tripletex",
                "operation": "update",
                "svenn_id": svenn_id,
                "tripletex_id": created["id"],
                "payload": {"email": CUSTOMER_BASE["email"], "version": created["version"]},
                "fields": ["email"],
                "expected_version": created["version"],
                "base_after": {"email": CUSTOMER_BASE["email"]},
            },
        ]

    env.plan(R1, *pair(1, good, "God"), *pair(2, bad, "Dårlig"))
    env.execute(R1)

    links = {link[0]: link for link in env.links("customer")}
    assert json.loads(links[1][4]) == {**CUSTOMER_BASE, "number": "801", "name": "God"}
    assert links[1][5] == good["version"] + 1  # the version Tripletex returned (G6)
    # the refused write left the base as before: Tripletex's e-mail still looks unsynced,
    # so the next run sends it again instead of copying the stale empty value to Svenn
    assert json.loads(links[2][4])["email"] is None
    assert links[2][3] == "active"


@pytest.mark.lake
def test_G5_a_503_burst_on_a_create_batch_is_settled_by_key_without_duplicates(apply_env):
    env = apply_env
    env.tripletex_sandbox.add_fault(r"/customer/list$", method="POST", status=503, count=2)
    env.plan(
        R1,
        *[
            {
                "entity": "customer",
                "target": "tripletex",
                "operation": "create",
                "svenn_id": i,
                "key": str(900 + i),
                "payload": {"name": f"K{i}", "customerNumber": 900 + i},
                "base_after": {**CUSTOMER_BASE, "number": str(900 + i)},
            }
            for i in range(3)
        ],
    )
    report = env.execute(R1)

    assert report.successes == 3 and not report.findings
    for i in range(3):
        assert len(_tx_customers(env, 900 + i)) == 1
    assert env.tripletex_sandbox.stats(env.tripletex_key)["requests"]["POST /v2/customer/list"] == 3


def test_G5_an_api_down_for_good_leaves_the_create_unsettled_for_recovery(apply_env):
    env = apply_env
    env.tripletex_sandbox.add_fault(r"/customer", status=503, count=1000)
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 5,
            "key": "905",
            "payload": {"name": "K", "customerNumber": 905},
        },
    )
    report = env.execute(R1)

    assert report.successes == 0 and report.unavailable == 1
    assert env.query("SELECT state FROM sync.operations") == [("intent",)]
    assert env.query("SELECT code FROM sync.findings") == [("API_UNAVAILABLE",)]


def test_G4_a_missing_reference_holds_the_record_with_a_finding(apply_env):
    env = apply_env
    env.plan(
        R1,
        {
            "entity": "project",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 31,
            "key": "P9",
            "payload": {
                "name": "X",
                "number": "P9",
                "startDate": "2026-01-01",
                "projectManager": {"id": _owner(env)},
                "customer": {"$ref": {"entity": "customer", "svenn_id": 404}},
            },
        },
    )
    report = env.execute(R1)

    assert report.failures == 1
    assert env.query("SELECT code FROM sync.findings") == [("DEPENDENCY_NOT_SYNCED",)]
    assert env.tripletex_sandbox.stats(env.tripletex_key)["writes"] == 0


@pytest.mark.parametrize(
    ("entity", "operation", "payload"),
    [
        ("project", "update", {"isInternal": False, "version": 1}),
        ("customer", "update", {"isInactive": True, "version": 1}),
        ("customer", "delete", None),
    ],
    ids=["P4-isInternal", "C3-inactivate", "no-delete"],
)
def test_P4_C3_forbidden_tripletex_writes_stop_the_run_before_any_write(
    apply_env, entity, operation, payload
):
    env = apply_env
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 1,
            "payload": {"name": "OK", "customerNumber": 1},
        },
        {
            "entity": entity,
            "target": "tripletex",
            "operation": operation,
            "svenn_id": 2,
            "tripletex_id": 2,
            "payload": payload,
        },
    )
    with pytest.raises(UnsafeWriteError):
        env.execute(R1)
    assert env.tripletex_sandbox.stats(env.tripletex_key)["writes"] == 0


def test_P9_C7_complete_and_delete_in_svenn_detach_the_link(apply_env):
    env = apply_env
    project = env.svenn.create("projects", {"name": "Tak", "display_id": "7"})
    customer = env.svenn.create("customers", {"name": "Borte", "customer_number": "8"})
    with env.db.get_connection() as conn:
        for entity, record, tripletex_id in (("project", project, 70), ("customer", customer, 80)):
            conn.execute(
                "INSERT INTO sync.links VALUES (?, ?, ?, ?, 'k', 'matched', 'active', "
                "CAST('{}' AS JSON), 1, ?, now(), now())",
                [env.tenant, entity, record["id"], tripletex_id, record["version"]],
            )
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "svenn",
            "operation": "delete",
            "svenn_id": customer["id"],
            "tripletex_id": 80,
        },
        {
            "entity": "project",
            "target": "svenn",
            "operation": "complete",
            "svenn_id": project["id"],
            "tripletex_id": 70,
            "payload": {"status": "completed"},
            "expected_version": project["version"],
        },
    )
    report = env.execute(R1)

    assert report.successes == 2
    assert env.svenn.get("projects", project["id"])["status"] == "completed"
    assert customer["id"] not in [c["id"] for c in env.svenn.list_all("customers")]
    assert [link[3] for link in env.links("project") + env.links("customer")] == [
        "detached",
        "detached",
    ]


def test_C7_G7_a_deletion_whose_tripletex_record_still_exists_is_not_carried_out(apply_env):
    """Offset paging can miss a live record; the executor proves a deletion before Svenn
    loses the customer."""
    env = apply_env
    customer = env.svenn.create("customers", {"name": "Fortsatt Her AS", "customer_number": "9"})
    alive = env.tripletex.post("/customer", {"name": "Fortsatt Her AS", "customerNumber": 9})
    _link_customer(env, customer["id"], alive["id"], {**CUSTOMER_BASE, "number": "9"}, 1)
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "svenn",
            "operation": "delete",
            "svenn_id": customer["id"],
            "tripletex_id": alive["id"],
        },
    )
    report = env.execute(R1)

    assert report.successes == 0
    assert env.svenn.get("customers", customer["id"])["name"] == "Fortsatt Her AS"
    assert [link[3] for link in env.links("customer")] == ["active"]


def test_G5_a_svenn_create_repeated_after_a_lost_outcome_is_replayed_by_its_key(apply_env):
    env = apply_env
    row = {
        "entity": "customer",
        "target": "svenn",
        "operation": "create",
        "tripletex_id": 900,
        "key": "601",
        "payload": {"name": "Vik Rør", "customer_number": "601", "is_active": True},
        "base_after": {**CUSTOMER_BASE, "number": "601", "name": "Vik Rør"},
    }
    env.plan(R1, row)
    assert env.execute(R1).successes == 1
    # the outcome is lost (say the process died before its commit): no link, create again
    env.query("DELETE FROM sync.links")
    env.plan("run-2", row)
    assert env.execute("run-2").successes == 1

    keys = env.query("SELECT DISTINCT idempotency_key FROM sync.operations")
    assert len(keys) == 1 and keys[0][0].startswith("sync:acme:customer:tripletex:900:")
    created = [c for c in env.svenn.list_all("customers") if c["customer_number"] == "601"]
    assert len(created) == 1  # Svenn answered the repeat with the first record
    assert [link[:2] for link in env.links("customer")] == [(created[0]["id"], 900)]
