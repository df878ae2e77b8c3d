"""Acceptance of the whole sync (extract → rules → apply → error log) on generated worlds."""

from __future__ import annotations

import pytest

from sync_pipeline.generator import generate_world
from sync_pipeline_tests.apply.harness import WorldTenant, failure_text

WORLD_SEED = 11

#: World cases whose record must end with this open error (SYNC-RULES §2–4).
CASE_CODES = {
    "P1": "PROJECT_MISSING_START_DATE",
    "P6": "PROJECT_INVALID_NUMBER",
    "C1": "CUSTOMER_NON_NUMERIC_ID",
    "E1": "EMPLOYEE_MISSING_SURNAME",
}


@pytest.fixture(scope="module")
def synced(tripletex_sandbox, svenn_sandbox, tmp_path_factory):
    """A world synced once and then once more (the second run must write nothing)."""
    tenant = WorldTenant.create(
        tripletex_sandbox, svenn_sandbox, tmp_path_factory.mktemp("synced"), WORLD_SEED
    )
    first = tenant.run()
    assert first.success, failure_text(first)
    before = tenant.writes()
    second = tenant.run()
    assert second.success, failure_text(second)
    return tenant, first, second, tenant.writes() - before


def test_G6_a_second_run_over_unchanged_systems_plans_and_writes_nothing(synced):
    tenant, _, second, writes = synced
    assert writes == 0
    assert tenant.query("SELECT count(*) FROM sync.plan WHERE run_id = ?", second.run_id) == [(0,)]
    ((outcome, requests),) = tenant.query(
        "SELECT outcome, requests FROM sync.runs WHERE run_id = ?", second.run_id
    )
    assert outcome == "success" and '"apply": 0' in requests


def test_G4_every_live_record_is_linked_or_explained_in_the_error_log(synced):
    """Linked, detached on purpose (its counterpart was deleted, P8/C6), or in the error log."""
    tenant, *_ = synced
    for side in ("svenn", "tripletex"):
        for entity, table in (
            ("employee", "employees"),
            ("customer", "customers"),
            ("project", "projects"),
        ):
            unexplained = tenant.query(
                f"SELECT s.id, s.label FROM staging.{side}_{table} s "
                "WHERE s.tenant = 'acme' AND NOT s.deleted "
                f"AND NOT EXISTS (SELECT 1 FROM sync.links l WHERE l.tenant = s.tenant "
                f" AND l.entity = ? AND l.{side}_id = s.id) "
                f"AND NOT EXISTS (SELECT 1 FROM sync.errors e WHERE e.tenant = s.tenant "
                f" AND e.entity = ? AND e.resolved_at IS NULL AND e.{side}_id = s.id)",
                entity,
                entity,
            )
            assert unexplained == [], (side, entity)


def test_G1_linked_records_hold_equal_synced_fields_on_both_sides(synced):
    tenant, *_ = synced
    for entity, table, fields in (
        ("employee", "employees", ("number", "first_name", "last_name", "email", "phone")),
        ("customer", "customers", ("number", "name", "email", "phone", "organization_number")),
        ("project", "projects", ("number", "name", "start_date", "end_date", "status")),
    ):
        differing = tenant.query(
            f"SELECT l.svenn_id, l.tripletex_id FROM sync.links l "
            f"JOIN staging.svenn_{table} s ON s.tenant = l.tenant AND s.id = l.svenn_id "
            f"JOIN staging.tripletex_{table} t ON t.tenant = l.tenant AND t.id = l.tripletex_id "
            f"WHERE l.tenant = 'acme' AND l.entity = ? AND l.state = 'active' AND ("
            + " OR ".join(
                f"nullif(trim(CAST(s.{f} AS VARCHAR)), '') IS DISTINCT FROM "
                f"nullif(trim(CAST(t.{f} AS VARCHAR)), '')"
                for f in fields
            )
            + ")",
            entity,
        )
        assert differing == [], entity
    # references point at the linked counterpart (customer and manager through links)
    wrong_refs = tenant.query(
        "SELECT s.id FROM sync.links l "
        "JOIN staging.svenn_projects s ON s.tenant = l.tenant AND s.id = l.svenn_id "
        "JOIN staging.tripletex_projects t ON t.tenant = l.tenant AND t.id = l.tripletex_id "
        "LEFT JOIN sync.links c ON c.tenant = l.tenant AND c.entity = 'customer' "
        " AND c.state = 'active' AND c.svenn_id = s.customer_id "
        "WHERE l.tenant = 'acme' AND l.entity = 'project' AND l.state = 'active' "
        "AND c.tripletex_id IS NOT NULL AND c.tripletex_id IS DISTINCT FROM t.customer_id"
    )
    assert wrong_refs == []


def test_G10_every_ineligible_record_has_its_open_error_with_the_right_code(synced):
    tenant, *_ = synced
    world = generate_world(WORLD_SEED, "demo")
    for case, code in CASE_CODES.items():
        for side, entity, record_id in world.cases[case]:
            rows = tenant.query(
                f"SELECT count(*) FROM sync.errors WHERE tenant = 'acme' AND code = ? "
                f"AND entity = ? AND {side}_id = ? AND resolved_at IS NULL",
                code,
                entity,
                record_id,
            )
            assert rows == [(1,)], (case, side, entity, record_id)
    shown = tenant.clients()[1].get_errors()
    assert {e["code"] for e in shown} >= set(CASE_CODES.values())  # published to Svenn (G10)


def test_P1_an_error_fixed_at_the_source_is_resolved_and_the_project_appears_in_tripletex(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, WORLD_SEED + 1)
    assert tenant.run().success
    world = generate_world(WORLD_SEED + 1, "demo")
    (_, _, project_id) = world.cases["P1"][0]
    tx, sv = tenant.clients()
    project = sv.get("projects", project_id)
    assert tenant.query(
        "SELECT count(*) FROM sync.errors WHERE code = 'PROJECT_MISSING_START_DATE' "
        "AND svenn_id = ? AND resolved_at IS NULL",
        project_id,
    ) == [(1,)]

    sv.update("projects", project_id, {"start_date": "2026-03-01"})
    result = tenant.run()

    assert result.success, failure_text(result)
    (resolved,) = tenant.query(
        "SELECT resolved_at FROM sync.errors WHERE code = 'PROJECT_MISSING_START_DATE' "
        "AND svenn_id = ?",
        project_id,
    )
    assert resolved[0] is not None
    created = tx.list_all("/project", {"number": project["display_id"]}, "id,name,startDate")
    assert [(p["name"], p["startDate"]) for p in created] == [(project["name"], "2026-03-01")]
    shown = [e for e in sv.get_errors() if e["code"] == "PROJECT_MISSING_START_DATE"]
    assert project_id not in [e["record_id"] for e in shown]
