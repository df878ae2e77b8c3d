"""G10 end to end: a rule that blocks a change of a linked record is logged like an unlinked
record's, in ``sync.errors`` and in Svenn's error log, and resolves when lifted (issue 11).

One small company per side: run 1 links everything; then each linked record is edited in
Svenn so that a rule blocks the change (P1, E1, E3, P10, P11); run 2 must hold the change
and open the error; the edits are then undone or fixed and run 3 must resolve each error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from sync_pipeline_tests.apply.harness import TENANT, WorldTenant, failure_text


def _empty_tenant(tripletex_sandbox, svenn_sandbox, root) -> WorldTenant:
    tenant = WorldTenant(
        tripletex_sandbox,
        svenn_sandbox,
        tripletex_sandbox.new_company(),
        svenn_sandbox.new_company(),
        root,
    )
    root.mkdir(parents=True, exist_ok=True)
    body = {
        "mode": "active",
        "svenn": {"base_url": svenn_sandbox.base_url, "api_key": tenant.svenn_key},
        "tripletex": {
            "base_url": tripletex_sandbox.base_url,
            "consumer_token": "test-consumer",
            "employee_token": tenant.tripletex_key,
        },
    }
    tenant.tenants_file.write_text(yaml.safe_dump({"tenants": {TENANT: body}}))
    return tenant


@dataclass
class Story:
    tenant: WorldTenant
    svenn: dict[str, int]  # name → Svenn id
    tripletex: dict[str, int] = field(default_factory=dict)  # name → linked Tripletex id
    after_block: dict[str, Any] = field(default_factory=dict)  # Tripletex records after run 2
    after_lift: dict[str, Any] = field(default_factory=dict)  # … after run 3
    errors_blocked: list[tuple] = field(default_factory=list)  # open errors after run 2
    errors_lifted: list[tuple] = field(default_factory=list)  # open errors after run 3
    published: list[dict] = field(default_factory=list)  # Svenn's error log after run 2
    internal_project: int | None = None

    def open_error(self, rows: list[tuple], code: str, name: str) -> tuple | None:
        matches = [
            r for r in rows if r[0] == code and r[1] == _ENTITY[name] and r[2] == self.svenn[name]
        ]
        assert len(matches) <= 1, matches
        return matches[0] if matches else None


_ENTITY = {
    "mgr": "employee",
    "noaccess": "employee",
    "e1": "employee",
    "e3": "employee",
    "fjord": "customer",
    "p1": "project",
    "p10": "project",
    "p11": "project",
}
_FIELDS = {
    "employee": "id,lastName,phoneNumberMobile",
    "project": "id,startDate,customer(id),projectManager(id)",
    "customer": "id",
}


def _observe(story: Story) -> dict[str, Any]:
    tx, _ = story.tenant.clients()
    try:
        return {
            name: tx.get(f"/{_ENTITY[name]}/{story.tripletex[name]}", fields=_FIELDS[_ENTITY[name]])
            for name in ("e1", "e3", "p1", "p10", "p11")
        }
    finally:
        tx.close()


def _open_errors(tenant: WorldTenant) -> list[tuple]:
    return tenant.query(
        "SELECT code, entity, svenn_id, tripletex_id, severity FROM sync.errors "
        "WHERE tenant = 'acme' AND resolved_at IS NULL ORDER BY ALL"
    )


@pytest.fixture(scope="module")
def story(module_state_store, tripletex_sandbox, svenn_sandbox, tmp_path_factory) -> Story:
    """One linked world, on the module's store of the backend its tests run on."""
    tenant = _empty_tenant(tripletex_sandbox, svenn_sandbox, tmp_path_factory.mktemp("linked"))
    tx, sv = tenant.clients()
    (owner,) = tx.list_all("/employee", fields="id,email")
    ids: dict[str, int] = {}

    def create(name: str, resource: str, body: dict) -> None:
        ids[name] = sv.create(resource, body)["id"]

    # the integration's own Tripletex user, matched by e-mail: the projects' manager (P10)
    create("mgr", "employees", {"first_name": "Ola", "last_name": "Nordmann", "email": owner["email"], "employee_number": "1"})  # fmt: skip
    create("noaccess", "employees", {"first_name": "Per", "last_name": "Hansen", "employee_number": "2"})  # fmt: skip
    create("e1", "employees", {"first_name": "Kari", "last_name": "Berg", "employee_number": "3"})
    create("e3", "employees", {"first_name": "Lise", "last_name": "Dahl", "employee_number": "4"})
    create("fjord", "customers", {"name": "Fjord AS", "customer_number": "500", "email": "post@fjord.no"})  # fmt: skip
    create("abc", "customers", {"name": "Uten nummer AS", "customer_number": "ABC"})  # C1
    for name, number in (("p1", "100"), ("p10", "101"), ("p11", "102")):
        create(name, "projects", {"name": f"Bad {number}", "display_id": number, "start_date": "2026-01-05", "customer_id": ids["fjord"], "project_manager_id": ids["mgr"]})  # fmt: skip
    # a record only Tripletex has, logged by its Tripletex id (P3)
    internal = tx.post(
        "/project",
        {
            "name": "Intern",
            "number": "900",
            "isInternal": True,
            "startDate": "2026-01-01",
            "projectManager": {"id": owner["id"]},
        },
    )["id"]
    story = Story(tenant, ids, internal_project=internal)

    first = tenant.run()
    assert first.success, failure_text(first)
    for name, entity in _ENTITY.items():
        ((tripletex_id,),) = tenant.query(
            "SELECT tripletex_id FROM sync.links WHERE entity = ? AND svenn_id = ? "
            "AND state = 'active'",
            entity,
            ids[name],
        )
        story.tripletex[name] = tripletex_id

    # blocks: each change of a linked record that a rule forbids
    sv.update("projects", ids["p1"], {"start_date": None})  # P1
    sv.update("employees", ids["e1"], {"last_name": None})  # E1
    sv.update("employees", ids["e3"], {"is_active": False, "phone": "+47 90000000"})  # E3
    sv.update("projects", ids["p10"], {"project_manager_id": ids["noaccess"]})  # P10
    sv.update("projects", ids["p11"], {"customer_id": ids["abc"]})  # P11
    second = tenant.run()
    assert second.success, failure_text(second)
    story.errors_blocked = _open_errors(tenant)
    story.after_block = _observe(story)
    story.published = sv.get_errors()

    # lifted: fixed at the source
    sv.update("projects", ids["p1"], {"start_date": "2026-02-01"})
    sv.update("employees", ids["e1"], {"last_name": "Berg-Olsen"})
    sv.update("employees", ids["e3"], {"is_active": True})
    sv.update("projects", ids["p10"], {"project_manager_id": ids["mgr"]})
    sv.update("projects", ids["p11"], {"customer_id": ids["fjord"]})
    third = tenant.run()
    assert third.success, failure_text(third)
    story.errors_lifted = _open_errors(tenant)
    story.after_lift = _observe(story)
    tx.close()
    sv.close()
    return story


def _assert_blocked_then_resolved(story: Story, code: str, name: str, severity: str) -> None:
    blocked = story.open_error(story.errors_blocked, code, name)
    assert blocked == (code, _ENTITY[name], story.svenn[name], story.tripletex[name], severity)
    assert story.open_error(story.errors_lifted, code, name) is None


def test_G10_P1_linked_start_date_cleared_logged(story):
    _assert_blocked_then_resolved(story, "PROJECT_MISSING_START_DATE", "p1", "error")
    assert story.after_block["p1"]["startDate"] == "2026-01-05"  # Tripletex keeps its date
    assert story.after_lift["p1"]["startDate"] == "2026-02-01"


def test_G10_E1_linked_surname_cleared_logged(story):
    _assert_blocked_then_resolved(story, "EMPLOYEE_MISSING_SURNAME", "e1", "error")
    assert story.after_block["e1"]["lastName"] == "Berg"
    assert story.after_lift["e1"]["lastName"] == "Berg-Olsen"


def test_G10_E3_linked_inactive_employee_change_logged(story):
    _assert_blocked_then_resolved(story, "EMPLOYEE_INACTIVE_SKIPPED", "e3", "info")
    assert story.after_block["e3"]["phoneNumberMobile"] in ("", None)  # held
    assert story.after_lift["e3"]["phoneNumberMobile"] == "+47 90000000"  # sent once active


def test_G10_P10_linked_manager_not_allowed_logged(story):
    _assert_blocked_then_resolved(story, "PROJECT_MANAGER_DEFAULTED", "p10", "warning")
    manager = story.tripletex["mgr"]
    assert story.after_block["p10"]["projectManager"]["id"] == manager  # Tripletex kept it
    assert story.after_lift["p10"]["projectManager"]["id"] == manager


def test_G10_P11_linked_customer_changed_to_unsynced(story):
    _assert_blocked_then_resolved(story, "PROJECT_CUSTOMER_NOT_SYNCED", "p11", "warning")
    assert story.after_block["p11"]["customer"] is None  # synced without customer (P11)
    assert story.after_lift["p11"]["customer"]["id"] == story.tripletex["fjord"]


@pytest.mark.lake
def test_G10_findings_name_both_ids(story):
    """Every open error of a linked record names its link's two ids, whichever side's rule
    found it."""
    linked = set(
        story.tenant.query(
            "SELECT entity, svenn_id, tripletex_id FROM sync.links WHERE state = 'active'"
        )
    )
    linked_svenn = {(e, s) for e, s, _ in linked}
    about_linked = [r for r in story.errors_blocked if (r[1], r[2]) in linked_svenn]
    assert len(about_linked) == 5
    assert all(r[1:4] in linked for r in about_linked), about_linked


@pytest.mark.lake
def test_G10_published_errors_name_system(story):
    """Svenn's error log (its schema unchanged) says which system each id belongs to: the
    Svenn id as record_id, a Tripletex-only record as "tripletex:<id>", and the label
    names both ids with their systems."""
    p1 = next(e for e in story.published if e["code"] == "PROJECT_MISSING_START_DATE")
    assert p1["record_id"] == story.svenn["p1"]
    assert f"Svenn-ID {story.svenn['p1']}" in p1["record_label"]
    assert f"Tripletex-ID {story.tripletex['p1']}" in p1["record_label"]
    assert p1["message"] == "Prosjekt mangler startdato."
    internal = next(e for e in story.published if e["code"] == "PROJECT_INTERNAL_SKIPPED")
    assert internal["record_id"] == f"tripletex:{story.internal_project}"
    assert internal["record_label"].endswith(f"(Tripletex-ID {story.internal_project})")
    assert set(internal) == {
        "code",
        "severity",
        "message",
        "entity",
        "record_id",
        "record_label",
        "first_seen_at",
        "last_seen_at",
    }
