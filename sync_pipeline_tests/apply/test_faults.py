"""Faults injected through ``/_sandbox/faults`` during a sync of a generated world: 503
bursts, 429s, a 409 race and a record Tripletex rejects inside a batch. Every good record
is synced, the bad one is in the error log, and the run says it was partial (G5, G8, G10)."""

from __future__ import annotations

import json

from sync_pipeline_tests.apply.harness import (
    WorldTenant,
    differing_links,
    failure_text,
    unexplained_records,
)

SEED = 31
BAD_EMAIL = "ærlig@rørlegger.no"  # Svenn accepts it; Tripletex wants ASCII e-mail addresses


def test_G5_G8_G10_faults_leave_good_records_synced_and_bad_ones_in_the_error_log(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    _, svenn = tenant.clients()
    bad = svenn.create(
        "customers", {"name": "Ærlig Rør AS", "customer_number": "99001", "email": BAD_EMAIL}
    )
    try:
        tripletex_sandbox.add_fault(r"^/v2/project/list$", method="POST", status=503, count=2)
        tripletex_sandbox.add_fault(r"^/v2/customer/list$", method="PUT", status=503, count=2)
        svenn_sandbox.add_fault(r"^/api/v1/customers/bulk$", method="POST", status=429, count=2)
        svenn_sandbox.add_fault(r"^/api/v1/projects/bulk$", method="POST", status=503, count=2)
        # someone saves the employee in Tripletex while the sync writes it: a 409 race
        tripletex_sandbox.add_fault(r"^/v2/employee/\d+$", method="PUT", status=409, count=1)
        first = tenant.run()
    finally:
        tripletex_sandbox.clear_faults()
        svenn_sandbox.clear_faults()

    assert first.success, failure_text(first)
    tx_requests = tripletex_sandbox.stats(tenant.tripletex_key)["requests"]
    sv_requests = svenn_sandbox.stats(tenant.svenn_key)["requests"]
    # the faults did hit: each faulted call was repeated until it went through
    assert tx_requests["POST /v2/project/list"] >= 3
    assert tx_requests["PUT /v2/customer/list"] >= 3
    assert sv_requests["POST /api/v1/customers/bulk"] >= 3
    assert sv_requests["POST /api/v1/projects/bulk"] >= 3
    (outcome,) = tenant.query("SELECT outcome FROM sync.runs WHERE run_id = ?", first.run_id)[0]
    assert outcome == "partial"  # not pretending all went well
    findings = tenant.query(
        "SELECT code, svenn_id, severity, message, details FROM sync.findings "
        "WHERE run_id = ? AND code IN ('API_REJECTED', 'CONCURRENT_EDIT', 'API_UNAVAILABLE')",
        first.run_id,
    )
    assert sorted(f[0] for f in findings) == ["API_REJECTED", "CONCURRENT_EDIT"]
    (rejected,) = [f for f in findings if f[0] == "API_REJECTED"]
    assert rejected[1] == bad["id"] and "email: Ugyldig format." in rejected[3]
    assert json.loads(rejected[4])["status"] == 422
    (concurrent,) = [f for f in findings if f[0] == "CONCURRENT_EDIT"]
    assert concurrent[2] == "warning"
    (applied,) = first.asset_materializations_for_node("sync__links")
    assert applied.metadata["outcome"].value == "partial"
    assert applied.metadata["failures"].value == 2  # the rejected record and the raced one
    assert "| API_REJECTED | customer | " in applied.metadata["first_errors"].value

    second = tenant.run()  # re-reads and merges the raced record (G8)
    assert second.success, failure_text(second)
    before = tenant.writes()
    third = tenant.run()
    assert third.success, failure_text(third)
    # converged: the only write left is the rejected record, offered again each run
    assert tenant.writes() - before == 1
    assert tenant.query(
        "SELECT entity, target, operation, state, svenn_id FROM sync.operations WHERE run_id = ?",
        third.run_id,
    ) == [("customer", "tripletex", "create", "failed", bad["id"])]

    assert unexplained_records(tenant) == []
    assert differing_links(tenant) == []
    open_errors = tenant.query(
        "SELECT code, svenn_id FROM sync.errors WHERE resolved_at IS NULL "
        "AND code IN ('API_REJECTED', 'CONCURRENT_EDIT', 'API_UNAVAILABLE')"
    )
    assert open_errors == [("API_REJECTED", bad["id"])]
    assert tenant.query(
        "SELECT count(*) FROM sync.errors WHERE code = 'CONCURRENT_EDIT' AND resolved_at IS NOT NULL"
    ) == [(1,)]
