"""Companies are isolated; a sandbox restarted on its ``--state`` file keeps its data;
worlds load in bulk with their ids; the demo seed serves the generator's Tripletex side."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sync_pipeline.sandbox.process import SandboxProcess
from sync_pipeline.sandbox.tripletex.store import world_company
from sync_pipeline_tests.sandbox_tripletex.conftest import TripletexApi


def test_two_companies_cannot_see_each_others_data(tx_sandbox):
    one = TripletexApi(tx_sandbox, tx_sandbox.new_company(seed="empty"))
    two = TripletexApi(tx_sandbox, tx_sandbox.new_company(seed="empty"))
    customer = one.customer(name="Bare Min AS")
    project = one.project(customer={"id": customer["id"]})
    assert two.get("/customer").json()["values"] == []
    assert two.get("/project").json()["values"] == []
    assert two.get(f"/project/{project['id']}").status_code == 404
    assert two.put(f"/customer/{customer['id']}", {"name": "Kapret"}).status_code == 404
    assert one.get(f"/customer/{customer['id']}").json()["value"]["name"] == "Bare Min AS"
    # each session token belongs to its own company only
    assert (
        one.get("/token/session/>whoAmI").json()["value"]["companyId"]
        != (two.get("/token/session/>whoAmI").json()["value"]["companyId"])
    )


def test_reset_forgets_registered_companies(tmp_path):
    with SandboxProcess.start("tripletex", "--seed", "empty") as sandbox:
        token = sandbox.new_company(seed="empty")
        client = TripletexApi(sandbox, token)
        assert sandbox.control("POST", "reset").ok
        assert client.get("/department").status_code == 401
        TripletexApi(sandbox, sandbox.employee_token)  # the start-up company stays


def test_restart_with_state_file_keeps_data_and_sessions(tmp_path):
    state = tmp_path / "tripletex.state"
    with SandboxProcess.start("tripletex", "--seed", "empty", "--state", str(state)) as first:
        client = TripletexApi(first, first.new_company(seed="empty"))
        customer = client.customer(name="Varig AS")
        project = client.project(customer={"id": customer["id"]}, number="V-1")
        token = client.employee_token
    with SandboxProcess.start("tripletex", "--seed", "empty", "--state", str(state)) as second:
        client.base, client.sandbox = second.base_url, second
        # the old session still works, and a new one can be made for the same company
        assert client.get(f"/customer/{customer['id']}").json()["value"]["name"] == "Varig AS"
        again = TripletexApi(second, token)
        found = again.get("/project", number="V-1").json()["values"]
        assert [p["id"] for p in found] == [project["id"]]
        assert again.project()["id"] == project["id"] + 1  # ids continue after a restart


def small_world() -> SimpleNamespace:
    """A hand-made world of the generator's shape (ids from 1 per entity)."""
    return SimpleNamespace(
        company={"name": "Test Rør AS", "organization_number": "912345678"},
        tripletex={
            "departments": [{"id": 1, "name": "Avdeling", "departmentNumber": "1"}],
            "employees": [
                {
                    "id": 1,
                    "firstName": "Eier",
                    "lastName": "Eiersen",
                    "employeeNumber": "1",
                    "email": "eier@test.no",
                    "phoneNumberMobile": "",
                    "userType": "EXTENDED",
                    "department": {"id": 1},
                },
                {
                    "id": 2,
                    "firstName": "Uten",
                    "lastName": "Nummer",
                    "employeeNumber": "",
                    "email": "",
                    "phoneNumberMobile": "",
                    "userType": "NO_ACCESS",
                    "department": {"id": 1},
                },
            ],
            "customers": [
                {
                    "id": 1,
                    "customerNumber": 10001,
                    "name": "Kunde AS",
                    "email": "",
                    "invoiceEmail": "",
                    "phoneNumber": "",
                    "organizationNumber": "",
                    "isInactive": True,
                    "invoiceSendMethod": "EMAIL",
                    "postalAddress": {
                        "addressLine1": "Vei 1",
                        "postalCode": "0001",
                        "city": "Oslo",
                    },
                }
            ],
            "projects": [
                {
                    "id": 1,
                    "number": "",
                    "name": "Hoved",
                    "description": "",
                    "startDate": "2026-01-01",
                    "endDate": None,
                    "isClosed": False,
                    "isInternal": True,
                    "customer": None,
                    "projectManager": {"id": 1},
                    "mainProject": None,
                    "department": None,
                    "participants": [{"employee": {"id": 2}, "adminAccess": False}],
                },
                {
                    "id": 2,
                    "number": "7",
                    "name": "Under",
                    "description": "",
                    "startDate": "2026-01-01",
                    "endDate": "2026-02-01",
                    "isClosed": True,
                    "isInternal": False,
                    "customer": {"id": 1},
                    "projectManager": {"id": 1},
                    "mainProject": {"id": 1},
                    "department": {"id": 1},
                    "participants": [],
                },
            ],
        },
        cases={},
    )


def test_world_loads_with_its_ids_references_and_participants():
    company = world_company("k", small_world())
    assert company.name == "Test Rør AS" and company.owner_id == 1
    assert company.get("project", 2)["mainProject"] == 1
    assert company.lookup("project", "customer", 1) == [2]
    assert company.lookup("project", "number", "7") == [2]
    parts = [
        company.get("projectParticipant", i)
        for i in company.lookup("projectParticipant", "project", 1)
    ]
    assert [p["employee"] for p in parts] == [2]  # as given: no manager added on load
    address = company.get("address", company.get("customer", 1)["postalAddress"])
    assert address["city"] == "Oslo"
    assert company.next_ids["project"] == 3 and company.next_ids["customer"] == 2


def test_demo_seed_serves_the_generated_world(tripletex_sandbox):
    from sync_pipeline.generator import DEMO_SEED, generate_world

    world = generate_world(DEMO_SEED, "demo").tripletex
    client = TripletexApi(tripletex_sandbox, tripletex_sandbox.employee_token)
    projects = client.get("/project", fields="id,number,name").json()["values"]
    assert [(p["id"], p["number"], p["name"]) for p in projects] == [
        (p["id"], p["number"], p["name"]) for p in world["projects"]
    ]
    active = [c for c in world["customers"] if not c["isInactive"]]
    assert len(client.get("/customer").json()["values"]) == len(active)
    assert len(client.get("/employee").json()["values"]) == len(world["employees"])


def test_loading_50000_customers_takes_seconds_not_minutes():
    """Issue 3: worlds load in bulk; 50,000 customers (with both addresses) in a few seconds."""
    world = small_world()
    customer = world.tripletex["customers"][0]
    world.tripletex["customers"] = [
        {**customer, "id": i, "customerNumber": 10_000 + i, "name": f"Kunde {i} AS"}
        for i in range(1, 50_001)
    ]
    world.tripletex["projects"] = []
    started = time.perf_counter()
    company = world_company("k", world)
    assert time.perf_counter() - started < 5.0
    assert len(company.tables["customer"]) == 50_000
    assert company.lookup("customer", "customerNumber", 60_000) == [50_000]
