"""Deletions end to end, through ``sync_job`` against both sandboxes: a record missing from
one listing never unsyncs its link (P9, C7, C6, P8, E4, G7), an incomplete page makes the
extract incomplete (G7), and every detached link stays in the error log until it is
re-attached (G13).

Listings are made to lie with sandbox faults that rewrite list answers (``hide_ids``,
``null_ids``, ``drop_fields``) while a GET by id still tells the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sync_pipeline_tests.apply.harness import REPO_ROOT, TENANT, WorldTenant, failure_text

SEED = 47
MANY = 10_000  # a fault that lasts for the whole run; cleared right after it


def _world(tripletex_sandbox, svenn_sandbox, tmp_path) -> WorldTenant:
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    first = tenant.run()
    assert first.success, failure_text(first)
    return tenant


def _linked(tenant: WorldTenant, entity: str, where: str = "true") -> tuple[int, int]:
    """An active link of ``entity`` whose records live on both sides (and match ``where``)."""
    table = {"project": "projects", "customer": "customers", "employee": "employees"}[entity]
    rows = tenant.query(
        f"SELECT l.svenn_id, l.tripletex_id FROM sync.links l "
        f"JOIN staging.svenn_{table} s ON s.tenant = l.tenant AND s.id = l.svenn_id "
        f"JOIN staging.tripletex_{table} t ON t.tenant = l.tenant AND t.id = l.tripletex_id "
        f"WHERE l.tenant = ? AND l.entity = ? AND l.state = 'active' AND NOT s.deleted "
        f"AND ({where}) ORDER BY l.svenn_id LIMIT 1",
        TENANT,
        entity,
    )
    assert rows, f"the world has no suitable {entity} link"
    return rows[0]


def _link_state(tenant: WorldTenant, entity: str, svenn_id: int) -> str:
    ((state,),) = tenant.query(
        "SELECT state FROM sync.links WHERE entity = ? AND svenn_id = ?", entity, svenn_id
    )
    return state


def _errors(tenant: WorldTenant, entity: str, svenn_id: int, code: str) -> list[tuple]:
    """(tripletex_id, severity, open, details) of the record's error-log rows with ``code``."""
    return [
        (t, sev, is_open, json.loads(details))
        for t, sev, is_open, details in tenant.query(
            "SELECT tripletex_id, severity, resolved_at IS NULL, details FROM sync.errors "
            "WHERE entity = ? AND svenn_id = ? AND code = ? ORDER BY first_seen_at",
            entity,
            svenn_id,
            code,
        )
    ]


def _operations(tenant: WorldTenant, run_id: str, entity: str, svenn_id: int) -> list[tuple]:
    return tenant.query(
        "SELECT target, operation, state FROM sync.operations "
        "WHERE run_id = ? AND entity = ? AND svenn_id = ? ORDER BY seq",
        run_id,
        entity,
        svenn_id,
    )


def test_P9_E4_records_hidden_from_tripletex_listings_keep_their_links_and_edits_sync_later(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    """Offset paging can miss a live record; the GET by id proves it alive, so nothing is
    completed, deleted or detached, and the edit made meanwhile syncs on the next run."""
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    project_s, project_t = _linked(tenant, "project", "s.status = 'active'")
    employee_s, employee_t = _linked(
        tenant,
        "employee",
        "t.id NOT IN (SELECT project_manager_id FROM staging.tripletex_projects "
        " WHERE project_manager_id IS NOT NULL)",
    )
    tx, sv = tenant.clients()
    version = tx.get(f"/project/{project_t}", fields="version")["version"]
    tx.put(f"/project/{project_t}", {"id": project_t, "version": version, "name": "Nytt tak"})
    try:
        tripletex_sandbox.add_fault(
            r"^/v2/project$", method="GET", hide_ids=[project_t], count=MANY
        )
        tripletex_sandbox.add_fault(
            r"^/v2/employee$", method="GET", hide_ids=[employee_t], count=MANY
        )
        hidden = tenant.run()
    finally:
        tripletex_sandbox.clear_faults()
    assert hidden.success, failure_text(hidden)

    assert _link_state(tenant, "project", project_s) == "active"
    assert _link_state(tenant, "employee", employee_s) == "active"
    assert sv.get("projects", project_s)["status"] == "active"  # not completed (P9)
    assert _operations(tenant, hidden.run_id, "project", project_s) == [
        ("svenn", "complete", "skipped")
    ]
    assert _operations(tenant, hidden.run_id, "employee", employee_s) == [
        ("state", "detach", "skipped")
    ]
    for entity, svenn_id, tripletex_id in (
        ("project", project_s, project_t),
        ("employee", employee_s, employee_t),
    ):
        assert _errors(tenant, entity, svenn_id, "LINK_DETACHED") == []
        ((t, severity, is_open, _),) = _errors(tenant, entity, svenn_id, "DELETION_NOT_CONFIRMED")
        assert (t, severity, is_open) == (tripletex_id, "info", True)

    clean = tenant.run()
    assert clean.success, failure_text(clean)
    assert sv.get("projects", project_s)["name"] == "Nytt tak"
    assert sv.get("projects", project_s)["status"] == "active"
    assert [e[2] for e in _errors(tenant, "project", project_s, "DELETION_NOT_CONFIRMED")] == [
        False
    ]
    tx.close()
    sv.close()


def test_C6_P8_records_hidden_from_a_full_svenn_listing_are_not_deleted(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    """Svenn deletes softly: a record is gone only by its tombstone, never by its absence."""
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    customer_s, customer_t = _linked(tenant, "customer", "s.is_active")
    project_s, _ = _linked(tenant, "project", "s.status = 'active'")
    tx, sv = tenant.clients()
    sv.update("customers", customer_s, {"name": "Omdøpt Kunde AS"})
    try:
        svenn_sandbox.add_fault(
            r"^/api/v1/customers$", method="GET", hide_ids=[customer_s], count=MANY
        )
        svenn_sandbox.add_fault(
            r"^/api/v1/projects$", method="GET", hide_ids=[project_s], count=MANY
        )
        hidden = tenant.run(full=True)
    finally:
        svenn_sandbox.clear_faults()
    assert hidden.success, failure_text(hidden)

    assert _link_state(tenant, "customer", customer_s) == "active"
    assert _link_state(tenant, "project", project_s) == "active"
    assert tenant.query(
        "SELECT count(*) FROM sync.plan WHERE run_id = ? AND operation IN ('detach', 'delete', "
        "'complete')",
        hidden.run_id,
    ) == [(0,)]

    clean = tenant.run()
    assert clean.success, failure_text(clean)
    assert tx.get(f"/customer/{customer_t}", fields="name")["name"] == "Omdøpt Kunde AS"
    assert _link_state(tenant, "customer", customer_s) == "active"
    tx.close()
    sv.close()


def test_P9_a_svenn_412_on_the_complete_leaves_the_link_active_until_svenn_accepts_it(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    project_s, project_t = _linked(tenant, "project", "s.status = 'active'")
    tx, sv = tenant.clients()
    tx.delete(f"/project/{project_t}")
    try:
        svenn_sandbox.add_fault(r"^/api/v1/projects/bulk$", method="POST", status=412, count=1)
        refused = tenant.run()
    finally:
        svenn_sandbox.clear_faults()
    assert refused.success, failure_text(refused)

    assert _link_state(tenant, "project", project_s) == "active"
    assert sv.get("projects", project_s)["status"] == "active"
    assert _operations(tenant, refused.run_id, "project", project_s) == [
        ("svenn", "complete", "failed")
    ]
    ((t, severity, is_open, _),) = _errors(tenant, "project", project_s, "CONCURRENT_EDIT")
    assert (t, severity, is_open) == (project_t, "warning", True)
    assert _errors(tenant, "project", project_s, "LINK_DETACHED") == []

    accepted = tenant.run()
    assert accepted.success, failure_text(accepted)
    assert sv.get("projects", project_s)["status"] == "completed"
    assert _link_state(tenant, "project", project_s) == "detached"
    ((t, severity, is_open, details),) = _errors(tenant, "project", project_s, "LINK_DETACHED")
    assert (t, severity, is_open) == (project_t, "warning", True)
    assert details["rule_id"] == "P9"
    assert details["reason"] == "missing from a complete Tripletex listing"
    tx.close()
    sv.close()


@pytest.mark.lake
def test_G7_a_svenn_page_without_next_cursor_or_a_record_without_id_makes_the_extract_incomplete(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    customer_s, customer_t = _linked(tenant, "customer")
    small_pages = {"ops": {"extract": {"config": {"svenn": {"page_size": 40}}}}}
    links_before = tenant.query(
        "SELECT entity, svenn_id, tripletex_id, state FROM sync.links ORDER BY ALL"
    )
    cases = [
        (svenn_sandbox, r"^/api/v1/customers$", {"drop_fields": ["next_cursor"]}, "svenn"),
        (svenn_sandbox, r"^/api/v1/customers$", {"null_ids": [customer_s]}, "svenn"),
        (tripletex_sandbox, r"^/v2/customer$", {"null_ids": [customer_t]}, "tripletex"),
    ]
    reasons = []
    for sandbox, path, rewrite, system in cases:
        try:
            sandbox.add_fault(path, method="GET", count=MANY, **rewrite)
            broken = tenant.run(full=True, run_config=small_pages)
        finally:
            sandbox.clear_faults()
        assert not broken.success
        ((complete, error),) = tenant.query(
            "SELECT complete, error FROM sync.extracts WHERE run_id = ? AND system = ? "
            "AND entity = 'customer'",
            broken.run_id,
            system,
        )
        assert complete is False
        reasons.append(error)
        assert "incomplete" in failure_text(broken)
        # nothing planned, nothing detached: the previous snapshot stands
        assert tenant.query("SELECT count(*) FROM sync.plan WHERE run_id = ?", broken.run_id) == [
            (0,)
        ]
        assert (
            tenant.query(
                "SELECT entity, svenn_id, tripletex_id, state FROM sync.links ORDER BY ALL"
            )
            == links_before
        )
    assert "no 'next_cursor'" in reasons[0]
    assert "a record on the page has no id" in reasons[1]
    assert "a record on the page has no id" in reasons[2]


def test_G13_link_detached_is_open_while_detached_and_resolved_after_relink(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    """A link wrongly detached (Tripletex answered 404 for a live employee) is in the error
    log run after run, until an operator re-attaches it."""
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    employee_s, employee_t = _linked(
        tenant,
        "employee",
        "t.id NOT IN (SELECT project_manager_id FROM staging.tripletex_projects "
        " WHERE project_manager_id IS NOT NULL)",
    )
    try:
        tripletex_sandbox.add_fault(
            r"^/v2/employee$", method="GET", hide_ids=[employee_t], count=MANY
        )
        tripletex_sandbox.add_fault(
            rf"^/v2/employee/{employee_t}$", method="GET", status=404, count=1
        )
        detached = tenant.run()
    finally:
        tripletex_sandbox.clear_faults()
    assert detached.success, failure_text(detached)
    assert _link_state(tenant, "employee", employee_s) == "detached"
    ((t, severity, is_open, details),) = _errors(tenant, "employee", employee_s, "LINK_DETACHED")
    assert (t, severity, is_open, details["rule_id"]) == (employee_t, "warning", True, "E4")

    still = tenant.run()
    assert still.success, failure_text(still)
    assert [e[2] for e in _errors(tenant, "employee", employee_s, "LINK_DETACHED")] == [True]

    command = ["relink", "--tenant", TENANT, "--entity", "employee", "--svenn-id"]
    relink = subprocess.run(
        [sys.executable, "-m", "sync_pipeline.cli", *command, str(employee_s)],
        cwd=REPO_ROOT,
        env=tenant.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert relink.returncode == 0, relink.stderr
    relinked = tenant.run()
    assert relinked.success, failure_text(relinked)
    assert _link_state(tenant, "employee", employee_s) == "active"
    assert [e[2] for e in _errors(tenant, "employee", employee_s, "LINK_DETACHED")] == [False]
