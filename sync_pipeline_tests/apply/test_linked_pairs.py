"""Rules that must hold once records are linked or matched (issue 11), end to end through
both sandboxes: each test starts from two empty companies and edits them through the APIs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline_tests.apply.harness import WorldTenant, failure_text


@dataclass
class Pair:
    tenant: WorldTenant
    tx: TripletexClient
    sv: SvennClient
    owner: int  # the Tripletex token owner, who may manage projects

    def sync(self) -> str:
        result = self.tenant.run()
        assert result.success, failure_text(result)
        return result.run_id

    def errors(self, code: str) -> list[dict[str, Any]]:
        rows = self.tenant.query(
            "SELECT entity, svenn_id, tripletex_id, details FROM sync.errors "
            "WHERE tenant = 'acme' AND code = ? AND resolved_at IS NULL ORDER BY ALL",
            code,
        )
        return [
            {"entity": e, "svenn_id": s, "tripletex_id": t, "details": json.loads(d or "null")}
            for e, s, t, d in rows
        ]

    def tx_project(self, **values: Any) -> dict[str, Any]:
        body = {"startDate": "2026-01-05", "projectManager": {"id": self.owner}, **values}
        return self.tx.post("/project", body)

    def sv_projects(self) -> list[dict[str, Any]]:
        return self.sv.list_all("projects")


@pytest.fixture
def pair(tripletex_sandbox, svenn_sandbox, tmp_path):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, None)
    tx, sv = tenant.clients()
    owner = tx.get("/token/session/>whoAmI")["employeeId"]
    yield Pair(tenant, tx, sv, owner)
    tx.close()
    sv.close()


@pytest.mark.lake
def test_P6_tripletex_invalid_number_not_created_in_svenn(pair):
    bad = pair.tx_project(name="Rørlegging", number="2026/14")
    pair.tx_project(name="Bad", number="Bø.12a")
    pair.sync()
    pair.sync()
    assert [p["display_id"] for p in pair.sv_projects()] == ["Bø.12a"]
    assert pair.errors("PROJECT_INVALID_NUMBER") == [
        {
            "entity": "project",
            "svenn_id": None,
            "tripletex_id": bad["id"],
            "details": {"key": "2026/14", "system": "Tripletex"},
        }
    ]


def test_P13_offer_not_created_or_matched(pair):
    offer = pair.tx_project(name="Tilbud bad", number="T1", isOffer=True)
    twin = pair.tx_project(name="Tilbud tak", number="T2", isOffer=True)
    project = pair.tx_project(name="Bad", number="200")
    pair.sv.create("projects", {"display_id": "T2", "name": "Tak", "start_date": "2026-02-01"})
    pair.sync()
    assert sorted(p["display_id"] for p in pair.sv_projects()) == ["200", "T2"]
    assert [(e["tripletex_id"], e["svenn_id"]) for e in pair.errors("PROJECT_IS_OFFER")] == [
        (offer["id"], None),
        (twin["id"], None),
    ]
    assert pair.tenant.query(
        "SELECT count(*) FROM sync.links WHERE entity = 'project' AND tripletex_id IN (?, ?)",
        offer["id"],
        twin["id"],
    ) == [(0,)]  # never matched, not even to the Svenn project with the offer's number

    # A linked project that becomes an offer stops syncing; it is not taken as deleted (P9).
    linked = pair.tx.get(f"/project/{project['id']}", fields="version")
    pair.tx.put(f"/project/{project['id']}", {"isOffer": True, "version": linked["version"]})
    pair.sync()
    (svenn_200,) = [p for p in pair.sv_projects() if p["display_id"] == "200"]
    assert svenn_200["status"] == "active"
    assert pair.tenant.query(
        "SELECT state FROM sync.links WHERE entity = 'project' AND tripletex_id = ?", project["id"]
    ) == [("active",)]
    assert project["id"] in [e["tripletex_id"] for e in pair.errors("PROJECT_IS_OFFER")]

    # An offer converted to a project syncs from then on.
    current = pair.tx.get(f"/project/{offer['id']}", fields="version")
    pair.tx.put(f"/project/{offer['id']}", {"isOffer": False, "version": current["version"]})
    pair.sync()
    assert sorted(p["display_id"] for p in pair.sv_projects()) == ["200", "T1", "T2"]
    assert offer["id"] not in [e["tripletex_id"] for e in pair.errors("PROJECT_IS_OFFER")]


def _writes_of_next_run(pair: Pair) -> int:
    before = pair.tenant.writes()
    pair.sync()
    return pair.tenant.writes() - before


def test_P5_linked_number_cleared_in_tripletex_gets_generated(pair):
    project = pair.tx_project(name="Bad", number="100")
    pair.sync()
    (svenn_project,) = pair.sv_projects()
    assert svenn_project["display_id"] == "100"
    current = pair.tx.get(f"/project/{project['id']}", fields="version")
    pair.tx.put(f"/project/{project['id']}", {"number": "", "version": current["version"]})
    pair.sync()
    assert pair.sv.get("projects", svenn_project["id"])["display_id"] == "101"
    assert pair.tx.get(f"/project/{project['id']}", fields="number")["number"] == "101"
    assert pair.tenant.query(
        "SELECT state, base->>'$.number' FROM sync.links WHERE entity = 'project'"
    ) == [("active", "101")]
    assert _writes_of_next_run(pair) == 0  # G6: settled


def test_E2_email_match_without_numbers(pair):
    numbers = {e["employeeNumber"] for e in pair.tx.list_all("/employee", fields="employeeNumber")}
    top = max([int(n) for n in numbers if n and n.isdigit()], default=0)
    employee = pair.tx.post(
        "/employee",
        {
            "firstName": "Kari",
            "lastName": "Nordmann",
            "email": "kari@bad.no",
            "userType": "NO_ACCESS",
            "department": {"id": pair.tx.list_all("/department", fields="id")[0]["id"]},
        },
    )
    svenn = pair.sv.create(
        "employees", {"first_name": "Kari", "last_name": "Nordmann", "email": "KARI@bad.no"}
    )
    pair.sync()
    expected = pair.sv.get("employees", svenn["id"])["employee_number"]
    assert expected and int(expected) > top  # generated (the token owner may get one too)
    got = pair.tx.get(f"/employee/{employee['id']}", fields="employeeNumber")
    assert got["employeeNumber"] == expected
    assert [e["employee_number"] for e in pair.sv.list_all("employees")].count(expected) == 1
    assert pair.tenant.query(
        "SELECT svenn_id, tripletex_id, base->>'$.number' FROM sync.links "
        "WHERE entity = 'employee' AND state = 'active' AND svenn_id = ?",
        svenn["id"],
    ) == [(svenn["id"], employee["id"], expected)]
    assert _writes_of_next_run(pair) == 0  # G6: settled


def _svenn_twin(pair: Pair, entity: str, tripletex_id: int) -> int:
    ((svenn_id,),) = pair.tenant.query(
        "SELECT svenn_id FROM sync.links WHERE entity = ? AND tripletex_id = ?",
        entity,
        tripletex_id,
    )
    return svenn_id


def test_P11_deleted_svenn_customer_not_referenced(pair):
    customer = pair.tx.post("/customer", {"name": "Hansen AS", "email": "post@hansen.no"})
    pair.sync()
    pair.sv.delete("customers", _svenn_twin(pair, "customer", customer["id"]))  # C6
    project = pair.tx_project(name="Bad", number="300", customer={"id": customer["id"]})
    pair.sync()
    (created,) = pair.sv_projects()
    assert (created["display_id"], created["customer_id"]) == ("300", None)
    assert pair.errors("PROJECT_CUSTOMER_NOT_SYNCED") == [
        {
            "entity": "project",
            "svenn_id": None,
            "tripletex_id": project["id"],
            "details": {"tripletex_customer_id": customer["id"]},
        }
    ]
    assert pair.errors("API_REJECTED") == []


def test_P10_deleted_svenn_manager_not_referenced(pair):
    department = pair.tx.list_all("/department", fields="id")[0]["id"]
    manager = pair.tx.post(
        "/employee",
        {
            "firstName": "Ola",
            "lastName": "Leder",
            "email": "ola@bad.no",
            "employeeNumber": "50",
            "userType": "EXTENDED",
            "department": {"id": department},
        },
    )
    pair.sync()
    pair.sv.delete("employees", _svenn_twin(pair, "employee", manager["id"]))  # E4: detached
    project = pair.tx_project(name="Tak", number="301", projectManager={"id": manager["id"]})
    pair.sync()
    (created,) = pair.sv_projects()
    assert (created["display_id"], created["project_manager_id"]) == ("301", None)
    assert [
        (e["tripletex_id"], e["details"]) for e in pair.errors("PROJECT_MANAGER_NOT_SYNCED")
    ] == [(project["id"], {"tripletex_project_manager_id": manager["id"]})]
    assert pair.errors("API_REJECTED") == []


def test_G3_after_go_live_match_newest_wins(pair):
    """P4 after go-live: a Svenn project created with the number of an internal Tripletex
    project links to it, and the user's newer name and dates reach Tripletex (G3 as G2 with
    no base); isInternal stays."""
    pair.tx_project(name="Bad", number="100")
    internal = pair.tx_project(
        name="Internt", number="900", isInternal=True, startDate="2026-01-05"
    )
    pair.sync()  # go-live for projects: 100 is created in Svenn; 900 is internal (P3)
    assert [p["display_id"] for p in pair.sv_projects()] == ["100"]
    svenn = pair.sv.create(
        "projects",
        {
            "display_id": "900",
            "name": "Lager Storgata",
            "start_date": "2026-03-01",
            "end_date": "2026-06-30",
        },
    )
    pair.sync()
    got = pair.tx.get(
        f"/project/{internal['id']}", fields="name,startDate,endDate,isInternal,number"
    )
    assert got == {
        "name": "Lager Storgata",
        "startDate": "2026-03-01",
        "endDate": "2026-06-30",
        "isInternal": True,
        "number": "900",
    }
    now = pair.sv.get("projects", svenn["id"])
    assert (now["name"], now["start_date"], now["end_date"]) == (
        "Lager Storgata",
        "2026-03-01",
        "2026-06-30",
    )
    assert pair.tenant.query(
        "SELECT field, winner FROM sync.conflicts WHERE tripletex_id = ? ORDER BY field",
        internal["id"],
    ) == [("name", "svenn"), ("start_date", "svenn")]
    assert _writes_of_next_run(pair) == 0  # G6
