"""The apply assets as Dagster runs them: review mode (G9) and an API down for every write."""

from __future__ import annotations

from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline_tests.apply.harness import (
    WORLD_WRITE_PATHS,
    WorldTenant,
    failure_text,
    unexplained_records,
)

SEED = 41


def test_G9_a_review_tenant_plans_and_logs_errors_but_writes_nothing(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED, mode="review")
    result = tenant.run()

    assert result.success, failure_text(result)
    assert tenant.writes() == 0
    assert tenant.query("SELECT outcome FROM sync.runs WHERE run_id = ?", result.run_id) == [
        ("review",)
    ]
    assert tenant.query("SELECT count(*) FROM sync.operations") == [(0,)]
    (planned,) = tenant.query("SELECT count(*) FROM sync.plan WHERE NOT apply")[0]
    assert planned > 0
    (open_errors,) = tenant.query("SELECT count(*) FROM sync.errors WHERE resolved_at IS NULL")[0]
    assert open_errors > 0  # visible to the operator reviewing the plan
    assert tenant.clients()[1].get_errors() == []  # but not published: G9 writes nothing
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks


def test_G5_a_run_that_could_write_nothing_because_the_apis_are_down_fails_and_recovers(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    sandboxes = {"tripletex": tripletex_sandbox, "svenn": svenn_sandbox}
    try:
        for system, method, path in WORLD_WRITE_PATHS:
            sandboxes[system].add_fault(path, method=method, status=500, count=100_000)
        down = tenant.run()
    finally:
        tripletex_sandbox.clear_faults()
        svenn_sandbox.clear_faults()

    assert not down.success
    assert "sync__links" in failure_text(down)
    assert tenant.query(
        "SELECT count(*) FROM sync.operations WHERE state = 'done' AND target <> 'state'"
    ) == [(0,)]
    (outcome, reason) = tenant.query(
        "SELECT outcome, reason FROM sync.runs WHERE run_id = ?", down.run_id
    )[0]
    assert outcome == "failed" and "unavailable" in reason
    (unavailable,) = tenant.query(
        "SELECT count(*) FROM sync.errors WHERE code = 'API_UNAVAILABLE' AND resolved_at IS NULL"
    )[0]
    assert unavailable > 0  # the records waiting are in the error log, not silently dropped

    back = tenant.run()
    assert back.success, failure_text(back)
    assert tenant.query(
        "SELECT count(*) FROM sync.errors WHERE code = 'API_UNAVAILABLE' AND resolved_at IS NULL"
    ) == [(0,)]
    assert unexplained_records(tenant) == []


def test_G9_G10_an_approved_review_tenant_with_nothing_to_write_is_live_and_publishes(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED, mode="review")
    with SyncDuckDB(database=str(tenant.db_path)).get_connection() as conn:
        conn.execute("INSERT INTO sync.approvals VALUES ('acme', 'go_live', 'kari', now(), NULL)")
    live = tenant.run()
    assert live.success, failure_text(live)
    _, svenn = tenant.clients()
    # a record the rules refuse (P1: no start date) plans no write, only an error
    unsyncable = svenn.create("projects", {"name": "Uten startdato", "display_id": "990001"})

    quiet = tenant.run()

    assert quiet.success, failure_text(quiet)
    assert tenant.query(
        "SELECT count(*) FROM sync.plan WHERE run_id = ? AND apply", quiet.run_id
    ) == [(0,)]
    assert tenant.query("SELECT mode, outcome FROM sync.runs WHERE run_id = ?", quiet.run_id) == [
        ("active", "success")
    ]
    shown = {(e["entity"], e["record_id"]) for e in svenn.get_errors()}
    assert ("projects", unsyncable["id"]) in shown  # users see the new error in Svenn
