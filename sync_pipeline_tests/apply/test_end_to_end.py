"""Acceptance of the whole sync (extract → rules → apply → error log) on generated worlds."""

from __future__ import annotations

import json

import pytest

from sync_pipeline.generator import generate_world
from sync_pipeline_tests.apply.harness import (
    WorldTenant,
    differing_links,
    failure_text,
    unexplained_records,
)

WORLD_SEED = 11

#: World cases whose record must end with this open error (SYNC-RULES §2–4).
CASE_CODES = {
    "P1": "PROJECT_MISSING_START_DATE",
    "P6": "PROJECT_INVALID_NUMBER",
    "C1": "CUSTOMER_NON_NUMERIC_ID",
    "E1": "EMPLOYEE_MISSING_SURNAME",
}


@pytest.fixture(scope="module")
def synced(module_state_store, tripletex_sandbox, svenn_sandbox, tmp_path_factory):
    """A world synced once and then once more (the second run must write nothing), on the
    module's store of the backend its tests run on."""
    tenant = WorldTenant.create(
        tripletex_sandbox, svenn_sandbox, tmp_path_factory.mktemp("synced"), WORLD_SEED
    )
    first = tenant.run()
    assert first.success, failure_text(first)
    before = tenant.writes()
    second = tenant.run()
    assert second.success, failure_text(second)
    return tenant, first, second, tenant.writes() - before


@pytest.mark.lake
def test_G6_a_second_run_over_unchanged_systems_plans_and_writes_nothing(synced):
    tenant, _, second, writes = synced
    assert writes == 0
    assert tenant.query("SELECT count(*) FROM sync.plan WHERE run_id = ?", second.run_id) == [(0,)]
    ((outcome, requests),) = tenant.query(
        "SELECT outcome, requests FROM sync.runs WHERE run_id = ?", second.run_id
    )
    assert outcome == "success" and '"apply": 0' in requests


@pytest.mark.lake
def test_G4_every_live_record_is_linked_or_explained_in_the_error_log(synced):
    tenant, *_ = synced
    assert unexplained_records(tenant) == []


def test_G1_linked_records_hold_equal_synced_fields_on_both_sides(synced):
    tenant, *_ = synced
    assert differing_links(tenant) == []


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


def test_G10_open_errors_and_runs_are_exported_for_analysts_after_each_run(synced):
    import duckdb

    tenant, _, second, _ = synced
    exports = tenant.root / "exports"
    (open_now,) = tenant.query("SELECT count(*) FROM sync.errors WHERE resolved_at IS NULL")[0]
    exported = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{exports}/open_errors/tenant=acme/data.parquet')"
    ).fetchall()
    assert exported == [(open_now,)]
    runs = duckdb.sql(
        f"SELECT run_id, outcome FROM read_parquet('{exports}/runs/tenant=acme/data.parquet') "
        "ORDER BY started_at"
    ).fetchall()
    assert len(runs) == 2 and runs[-1] == (second.run_id, "success")


def test_G10_each_apply_asset_tells_what_happened_in_its_metadata(synced):
    tenant, first, second, _ = synced
    (links,) = first.asset_materializations_for_node("sync__links")
    (errors,) = second.asset_materializations_for_node("sync__errors")
    meta = {k: getattr(v, "value", v) for k, v in links.metadata.items()}
    by_type = meta["operations_by_type"]
    assert by_type["customer.create"] > 0 and by_type["project.create"] > 0
    (applied,) = tenant.query(
        "SELECT count(*) FROM sync.operations WHERE run_id = ?", first.run_id
    )[0]
    assert (
        sum(by_type.values()) == meta["successes"] + meta["failures"] + meta["skipped"] == applied
    )
    (requests,) = tenant.query("SELECT requests FROM sync.runs WHERE run_id = ?", first.run_id)[0]
    made = json.loads(requests)
    assert meta["requests_tripletex"] == made["tripletex"]["apply"] > 0
    assert meta["requests_svenn"] == made["svenn"]["apply"] > 0
    shown = errors.metadata["open_errors"].value
    assert shown.startswith("| code | severity | entity | record | message |")
    by_code = dict(
        tenant.query("SELECT code, count(*) FROM sync.errors WHERE resolved_at IS NULL GROUP BY 1")
    )
    assert errors.metadata["open_by_code"].value == by_code
    assert set(CASE_CODES.values()) <= set(by_code)
    assert min(by_code) in shown  # the preview lists the open errors, sorted by code


def test_G10_the_runs_summary_counts_what_each_run_did(synced):
    tenant, first, second, _ = synced
    rows = tenant.query(
        "SELECT run_id, mode, counts, errors_opened, errors_resolved, requests, duration_s, "
        "finished_at IS NOT NULL FROM sync.runs ORDER BY started_at"
    )
    assert [(r[0], r[1], r[7]) for r in rows] == [
        (first.run_id, "active", True),
        (second.run_id, "active", True),
    ]
    (_, _, counts, opened, resolved, requests, duration, _) = rows[0]
    counts = json.loads(counts)
    planned = tenant.query(
        "SELECT entity, operation, count(*) FROM sync.plan WHERE run_id = ? GROUP BY ALL",
        first.run_id,
    )
    assert {(e, op, n) for e, ops in counts["planned"].items() for op, n in ops.items()} == set(
        planned
    )
    assert counts["applied"]["customer"]["create"]["done"] > 0
    ((rows_total, closed),) = tenant.query("SELECT count(*), count(resolved_at) FROM sync.errors")
    assert (opened, resolved) == (rows_total, 0)  # a fresh tenant: every error is new
    assert all(json.loads(requests)[system]["extract"] > 0 for system in ("svenn", "tripletex"))
    assert duration > 0
    assert rows[1][3:5] == (0, closed)  # nothing changed: nothing opened; resolved ones counted


def test_P5_E2_generated_numbers_reach_both_systems_and_tripletex_is_never_deleted_in(synced):
    tenant, *_ = synced
    world = generate_world(WORLD_SEED, "demo")
    tx, sv = tenant.clients()
    for case, entity, tx_field, svenn_field in (
        ("P5", "project", "number", "display_id"),
        ("E2", "employee", "employeeNumber", "employee_number"),
    ):
        numbers = []
        for _, _, tripletex_id in world.cases[case]:
            ((svenn_id,),) = tenant.query(
                "SELECT svenn_id FROM sync.links WHERE entity = ? AND tripletex_id = ? "
                "AND state = 'active'",
                entity,
                tripletex_id,
            )
            path = f"/{entity}/{tripletex_id}"
            number = tx.get(path, fields=tx_field)[tx_field]
            assert number and str(number).isdigit(), (case, tripletex_id)
            assert sv.get(f"{entity}s", svenn_id)[svenn_field] == number, (case, tripletex_id)
            numbers.append(number)
        assert len(set(numbers)) == len(numbers)  # each record its own number
    tx.close()
    sv.close()
    requests = tenant.tripletex_sandbox.stats(tenant.tripletex_key)["requests"]
    assert not [r for r in requests if r.startswith("DELETE")]
