"""Svenn writes go out in bulk (svenn-api.md, "Bulk writes"; issue 13) and stay as safe as
single writes: a bulk whose answer is lost never duplicates (its creates carry idempotency
keys; intents are logged before it is sent), and one refused operation is that record's
finding while the rest of the bulk lands (G5, G10)."""

from __future__ import annotations

import json
import time

import pytest

from sync_pipeline.assets.apply.recovery import recover
from sync_pipeline_tests.apply.harness import WorldTenant, failure_text

SEED = 31
R1, R2 = "run-1", "run-2"
#: Record writes one at a time, which bulk writes replace.
SINGLE_WRITES = ("POST /api/v1/{r}", "PATCH /api/v1/{r}/{{id}}", "DELETE /api/v1/{r}/{{id}}")
RESOURCES = ("customers", "employees", "projects")


def _customer_creates(env, *bodies: dict, run_id: str = R1) -> None:
    env.plan(
        run_id,
        *(
            {
                "entity": "customer",
                "target": "svenn",
                "operation": "create",
                "tripletex_id": 900 + i,
                "key": body.get("customer_number"),
                "payload": body,
            }
            for i, body in enumerate(bodies)
        ),
    )


def _svenn_customer_numbers(svenn) -> list[str]:
    return sorted(c["customer_number"] for c in svenn.list_all("customers"))


def test_G10_one_bad_operation_in_a_bulk_lands_the_others_and_is_a_finding_with_svenns_message(
    apply_env,
):
    env = apply_env
    _customer_creates(
        env,
        {"name": "Fjord AS", "customer_number": "701"},
        {"name": "", "customer_number": "702"},  # Svenn requires a name
        {"name": "Bre AS", "customer_number": "703"},
    )
    report = env.execute(R1)

    assert env.svenn_sandbox.stats(env.svenn_key)["requests"] == {"POST /api/v1/customers/bulk": 1}
    assert _svenn_customer_numbers(env.svenn) == ["701", "703"]
    assert env.query(
        "SELECT tripletex_id, state FROM sync.operations WHERE run_id = ? ORDER BY tripletex_id",
        R1,
    ) == [(900, "done"), (901, "failed"), (902, "done")]
    assert sorted(link[1] for link in env.links("customer")) == [900, 902]
    ((code, tripletex_id, message, details),) = env.query(
        "SELECT code, tripletex_id, message, details FROM sync.findings WHERE run_id = ?", R1
    )
    details = json.loads(details)
    assert (code, tripletex_id, details["status"]) == ("API_REJECTED", 901, 422)
    svenn_says = details["validation_messages"]
    assert [m["field"] for m in svenn_says] == ["name"]
    assert f"name: {svenn_says[0]['message']}" in message  # Svenn's own words, not ours
    assert report.successes == 2 and report.failures == 1


@pytest.mark.lake
def test_G5_a_bulk_answer_lost_on_every_attempt_leaves_intents_open_and_the_next_run_links_them(
    apply_env,
):
    """Svenn applies the bulk but every answer (the re-sends' too) is a 504: the creates'
    outcome is unknown, so their intents stay open with API_UNAVAILABLE; recovery finds them
    by key and the repeated plan creates nothing twice."""
    env = apply_env
    _customer_creates(
        env,
        {"name": "Tapt Svar AS", "customer_number": "801"},
        {"name": "Tapt Svar To AS", "customer_number": "802"},
    )
    env.svenn_sandbox.add_fault(
        r"^/api/v1/customers/bulk$", method="POST", after_commit=True, status=504, count=1000
    )
    try:
        report = env.execute(R1)
    finally:
        env.svenn_sandbox.clear_faults()

    assert _svenn_customer_numbers(env.svenn) == ["801", "802"]  # replayed, never duplicated
    assert env.svenn_sandbox.stats(env.svenn_key)["requests"]["POST /api/v1/customers/bulk"] > 1
    assert report.states["unknown"] == 2
    assert env.query(
        "SELECT tripletex_id, state FROM sync.operations WHERE run_id = ? ORDER BY tripletex_id",
        R1,
    ) == [(900, "intent"), (901, "intent")]
    assert env.query(
        "SELECT code, tripletex_id FROM sync.findings WHERE run_id = ? ORDER BY tripletex_id", R1
    ) == [("API_UNAVAILABLE", 900), ("API_UNAVAILABLE", 901)]
    assert env.links("customer") == []

    recover(
        tenant=env.tenant,
        run_id=R2,
        connect=env.db.get_connection,
        tripletex=env.tripletex,
        svenn=env.svenn,
        log=None,
    )
    _customer_creates(
        env,
        {"name": "Tapt Svar AS", "customer_number": "801"},
        {"name": "Tapt Svar To AS", "customer_number": "802"},
        run_id=R2,
    )
    env.execute(R2)  # the plan again: both are linked now, so nothing is sent

    assert _svenn_customer_numbers(env.svenn) == ["801", "802"]
    assert sorted(link[1] for link in env.links("customer")) == [900, 901]
    assert env.query("SELECT count(*) FROM sync.operations WHERE state = 'intent'") == [(0,)]


def test_G5_a_lost_bulk_answer_then_kill_and_rerun_creates_no_duplicate(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    """The first Svenn customer bulk of a world's first sync commits, its answer hangs and
    the run is killed (SIGKILL) meanwhile: the next run links what landed, duplicates
    nothing, and ends with every Tripletex customer linked once."""
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    _, svenn = tenant.clients()
    before = len(svenn.list_all("customers"))
    svenn_sandbox.add_fault(
        r"^/api/v1/customers/bulk$", method="POST", after_commit=True, delay_ms=8000, count=1
    )
    try:
        proc = tenant.start_cli_run()
        deadline = time.monotonic() + 120
        while len(svenn.list_all("customers")) == before:  # the bulk committed in Svenn
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the customer bulk never landed"
            time.sleep(0.05)  # polling Svenn's state, not waiting for time to pass
        proc.kill()
        proc.wait()
        proc.stdout.close()
    finally:
        svenn_sandbox.clear_faults()
    landed = len(svenn.list_all("customers")) - before
    assert landed > 0
    open_intents = tenant.query(
        "SELECT count(*) FROM sync.operations WHERE target = 'svenn' AND entity = 'customer' "
        "AND operation = 'create' AND state = 'intent'"
    )
    assert open_intents[0][0] >= landed  # logged before the bulk was sent

    rerun = tenant.run()
    assert rerun.success, failure_text(rerun)
    check = tenant.run()
    assert check.success, failure_text(check)

    numbers = [c["customer_number"] for c in svenn.list_all("customers")]
    assert len(numbers) == len(set(numbers)), "a customer exists twice in Svenn"
    assert tenant.query("SELECT count(*) FROM sync.operations WHERE state = 'intent'") == [(0,)]
    unlinked = tenant.query(
        "SELECT count(*) FROM sync.operations o WHERE o.target = 'svenn' AND o.entity = "
        "'customer' AND o.operation = 'create' AND o.state = 'done' AND NOT EXISTS (SELECT 1 "
        "FROM sync.links l WHERE l.tenant = o.tenant AND l.entity = o.entity AND l.state = "
        "'active' AND l.svenn_id = o.result_id AND l.tripletex_id = o.tripletex_id)"
    )
    assert unlinked == [(0,)]
    assert tenant.query(
        "SELECT count(*) FROM sync.plan WHERE run_id = ? AND apply AND target <> 'state'",
        check.run_id,
    ) == [(0,)]  # converged: nothing left to write
    svenn.close()


def test_G5_the_first_full_sync_sends_svenn_writes_as_bulk_requests(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    result = tenant.run()
    assert result.success, failure_text(result)

    stats = svenn_sandbox.stats(tenant.svenn_key)
    requests = stats["requests"]
    bulks = {r: requests.get(f"POST /api/v1/{r}/bulk", 0) for r in RESOURCES}
    singles = {
        form.format(r=r): requests[form.format(r=r)]
        for r in RESOURCES
        for form in SINGLE_WRITES
        if form.format(r=r) in requests
    }
    assert singles == {}
    sent = dict(
        tenant.query(
            "SELECT entity, count(*) FROM sync.operations WHERE run_id = ? AND target = 'svenn' "
            "AND state IN ('done', 'failed') GROUP BY entity",
            result.run_id,
        )
    )
    assert all(sent.get(entity, 0) > 1 for entity in ("customer", "employee", "project"))
    assert bulks["customers"] == bulks["employees"] == 1  # all of an entity's writes at once
    assert 1 <= bulks["projects"] <= 2  # a project's second write waits for the next bulk
    assert stats["writes"] == sum(sent.values())  # each operation written once


def test_G5_a_svenn_down_for_good_fails_whole_bulks_and_the_breaker_stops_sending(apply_env):
    """Every bulk answered 503: each create of a sent bulk is unknown (its intent open for
    recovery); after OUTAGE_AFTER_CHUNKS such bulks the rest is not sent, with a finding."""
    env = apply_env
    _customer_creates(
        env,
        {"name": "Nede En AS", "customer_number": "811"},
        {"name": "Nede To AS", "customer_number": "812"},
        {"name": "Nede Tre AS", "customer_number": "813"},
    )
    env.svenn_sandbox.add_fault(r"^/api/v1/customers/bulk$", method="POST", status=503, count=1000)
    try:
        env.execute(R1, batch_size=1)  # one bulk per record, to see the breaker count bulks
        sent = env.svenn_sandbox.stats(env.svenn_key)["requests"]["POST /api/v1/customers/bulk"]
    finally:
        env.svenn_sandbox.clear_faults()

    assert env.query(
        "SELECT tripletex_id, state FROM sync.operations WHERE run_id = ? ORDER BY tripletex_id",
        R1,
    ) == [(900, "intent"), (901, "intent"), (902, "failed")]
    findings = env.query(
        "SELECT tripletex_id, code, details FROM sync.findings WHERE run_id = ? "
        "ORDER BY tripletex_id",
        R1,
    )
    assert [(t, code) for t, code, _ in findings] == [
        (900, "API_UNAVAILABLE"),
        (901, "API_UNAVAILABLE"),
        (902, "API_UNAVAILABLE"),
    ]
    assert json.loads(findings[0][2])["outcome_unknown"] is True
    assert json.loads(findings[2][2])["not_attempted"] is True
    assert sent > 2  # the two bulks sent were retried before they counted as an outage
    assert env.svenn.list_all("customers") == []
