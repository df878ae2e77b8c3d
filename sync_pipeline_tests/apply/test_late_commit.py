"""A slow or late commit never becomes a duplicate (G4, G5).

A create whose answer is lost (read timeout, dropped connection) or is a 5xx may have
been committed, now or later. Tripletex has no idempotency key, so such a create is not
sent again in the same run: its intent stays open with a finding, and the next run's
recovery looks the record up by its key before anything is created again. Svenn creates
carry an Idempotency-Key, so they are repeated at once and Svenn replays the first answer.
The sandboxes' ``after_commit`` faults make the write land while its answer fails.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from sync_pipeline.assets.apply.executor import PlanExecutor, load_plan
from sync_pipeline.assets.apply.recovery import recover
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline.tenants import TenantConfig
from sync_pipeline_tests.apply.harness import WorldTenant, failure_text

R1, R2 = "run-1", "run-2"
#: The clients' read timeout in these tests; the faults answer later than that.
READ_TIMEOUT = 0.5


def _fast_tripletex(env) -> TripletexClient:
    return TripletexClient(
        base_url=env.tripletex_sandbox.base_url,
        consumer_token="test-consumer",
        employee_token=env.tripletex_key,
        rate_limit_requests=None,
        backoff_factor=0.01,
        timeout_seconds=READ_TIMEOUT,
    )


def _execute(env, run_id: str, *, tripletex=None, svenn=None):
    with env.db.get_connection() as conn:
        rows = load_plan(conn, env.tenant, [run_id])
    return PlanExecutor(
        tenant=env.tenant,
        run_id=run_id,
        connect=env.db.get_connection,
        tripletex=tripletex or env.tripletex,
        svenn=svenn or env.svenn,
        retry_wait_seconds=0.01,
    ).run(rows)


def _recover(env, run_id: str) -> dict[str, int]:
    return recover(
        tenant=env.tenant,
        run_id=run_id,
        connect=env.db.get_connection,
        tripletex=env.tripletex,
        svenn=env.svenn,
        log=logging.getLogger("test"),
    )


def _settled(sandbox, key: str, endpoint: str, sent: int, timeout: float = 30) -> None:
    """Wait until the sandbox has finished every one of the ``sent`` requests to
    ``endpoint`` (a slow commit included): polls the sandbox's state."""
    deadline = time.monotonic() + timeout
    while sandbox.stats(key)["requests"].get(endpoint, 0) < sent:
        assert time.monotonic() < deadline, f"{endpoint}: not all {sent} requests finished"
        time.sleep(0.05)


def _employee_create(env, svenn_id: int, number: str) -> dict:
    department = env.tripletex.list_all("/department", fields="id")[0]["id"]
    return {
        "entity": "employee",
        "target": "tripletex",
        "operation": "create",
        "svenn_id": svenn_id,
        "key": number,
        "label": f"{number} Sen Commit",
        "payload": {
            "firstName": "Sen",
            "lastName": "Commit",
            "employeeNumber": number,
            "userType": "NO_ACCESS",
            "department": {"id": department},
        },
        "base_after": {"number": number, "first_name": "Sen", "last_name": "Commit"},
    }


def _tx_employees(env, number: str) -> list[dict]:
    return env.tripletex.list_all("/employee", {"employeeNumber": number}, "id,employeeNumber")


@pytest.mark.lake
def test_G5_a_slow_commit_after_a_read_timeout_is_not_resent(apply_env):
    env = apply_env
    tripletex = _fast_tripletex(env)
    # Tripletex carries the batch out only after the client gave up (a slow commit)
    env.tripletex_sandbox.add_fault(
        r"^/v2/employee/list$", method="POST", after_commit=True, commit_delay_ms=1500
    )
    env.plan(R1, _employee_create(env, 11, "4711"))
    try:
        report = _execute(env, R1, tripletex=tripletex)
        sent = tripletex.requests_by_endpoint.get("POST /employee/list", 0)
    finally:
        tripletex.close()
    _settled(env.tripletex_sandbox, env.tripletex_key, "POST /v2/employee/list", sent)

    assert sent == 1, "a create that may have landed is never sent again in the run"
    (employee,) = _tx_employees(env, "4711")  # the slow commit landed: once
    assert report.states["unknown"] == 1
    assert env.query("SELECT run_id, state FROM sync.operations") == [(R1, "intent")]
    ((code, svenn_id, details),) = env.query(
        "SELECT code, svenn_id, details FROM sync.findings WHERE run_id = ?", R1
    )
    assert (code, svenn_id) == ("API_UNAVAILABLE", 11)
    assert json.loads(details)["outcome_unknown"] is True
    assert env.links("employee") == []

    # the next run: recovery finds the record by its key and links it; the create its
    # plan still holds (computed before recovery) is skipped
    assert _recover(env, R2) == {"linked": 1}
    env.plan(R2, _employee_create(env, 11, "4711"))
    writes = env.tripletex_sandbox.stats(env.tripletex_key)["writes"]
    report = _execute(env, R2)

    assert report.states["skipped"] == 1
    assert env.tripletex_sandbox.stats(env.tripletex_key)["writes"] == writes
    assert [e["id"] for e in _tx_employees(env, "4711")] == [employee["id"]]
    assert [link[:4] for link in env.links("employee")] == [(11, employee["id"], "svenn", "active")]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_G5_a_5xx_after_a_committed_create_batch_is_not_resent(apply_env, status):
    env = apply_env
    env.tripletex_sandbox.add_fault(
        r"^/v2/customer/list$", method="POST", status=status, after_commit=True
    )
    env.plan(
        R1,
        *[
            {
                "entity": "customer",
                "target": "tripletex",
                "operation": "create",
                "svenn_id": i,
                "key": str(700 + i),
                "payload": {"name": f"K{i}", "customerNumber": 700 + i},
            }
            for i in (1, 2)
        ],
    )
    report = _execute(env, R1)

    requests = env.tripletex_sandbox.stats(env.tripletex_key)["requests"]
    assert requests["POST /v2/customer/list"] == 1
    assert report.states["unknown"] == 2 and report.unavailable == 2
    assert env.query("SELECT DISTINCT state FROM sync.operations") == [("intent",)]
    assert env.links("customer") == []
    for i in (1, 2):  # landed once; the next run's recovery links it
        assert len(env.tripletex.list_all("/customer", {"customerAccountNumber": 700 + i})) == 1
    assert _recover(env, R2) == {"linked": 2}


def test_G5_a_503_refusal_is_still_looked_up_and_sent_again(apply_env):
    """503 says the server did not handle the request (RFC 9110): nothing landed."""
    env = apply_env
    env.tripletex_sandbox.add_fault(r"^/v2/employee/list$", method="POST", status=503)
    env.plan(R1, _employee_create(env, 12, "4712"))
    report = _execute(env, R1)

    assert report.successes == 1 and not report.findings
    assert len(_tx_employees(env, "4712")) == 1


def test_G5_a_svenn_create_whose_answer_timed_out_is_replayed_under_its_idempotency_key(
    apply_env,
):
    env = apply_env
    svenn = SvennClient(
        base_url=env.svenn_sandbox.base_url,
        api_key=env.svenn_key,
        backoff_factor=0.01,
        timeout_seconds=READ_TIMEOUT,
    )
    # committed at once, answered after the client's read timeout
    env.svenn_sandbox.add_fault(
        r"^/api/v1/customers/bulk$", method="POST", after_commit=True, delay_ms=2000
    )
    env.plan(
        R1,
        {
            "entity": "customer",
            "target": "svenn",
            "operation": "create",
            "tripletex_id": 900,
            "key": "601",
            "payload": {"name": "Sen Svar AS", "customer_number": "601"},
        },
    )
    try:
        report = _execute(env, R1, svenn=svenn)
        sent = svenn.requests_by_endpoint.get("POST /customers/bulk", 0)
    finally:
        svenn.close()
    _settled(env.svenn_sandbox, env.svenn_key, "POST /api/v1/customers/bulk", sent)

    assert sent == 2  # repeated under the same key ...
    (stored,) = env.svenn.list_all("customers")  # ... and Svenn replayed: no duplicate
    assert stored["customer_number"] == "601"
    assert report.successes == 1 and not report.findings
    assert [link[:4] for link in env.links("customer")] == [
        (stored["id"], 900, "tripletex", "active")
    ]


# -- end to end: a run of sync_job over a generated world ----------------------------------------

SEED = 31
E2E_CASES = {
    # entity: (Tripletex batch path, fault: a read timeout after commit, or a 5xx after commit)
    "employee": (r"^/v2/employee/list$", {"delay_ms": 4000}),
    "customer": (r"^/v2/customer/list$", {"status": 500}),
    "project": (r"^/v2/project/list$", {"status": 504}),
}
KEY_COLUMN = {"employee": "employeeNumber", "customer": "customerNumber", "project": "number"}


def _tripletex_keys(tenant: WorldTenant, entity: str) -> list[str]:
    tx, sv = tenant.clients()
    try:
        passes = [{"isInactive": False}, {"isInactive": True}] if entity == "customer" else [{}]
        field = KEY_COLUMN[entity]
        return sorted(
            str(r[field])
            for extra in passes
            for r in tx.list_all(f"/{entity}", extra, f"id,{field}")
            if r.get(field) not in (None, "")
        )
    finally:
        tx.close()
        sv.close()


def _late_commit_no_duplicate(tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch, entity):
    """A run whose Tripletex batch create of ``entity`` lands but is answered by a timeout or
    a 5xx: nothing is created twice, the intents stay open and are in the error log, and
    the next run links the records recovery finds by key and creates nothing."""
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    plain = TenantConfig.tripletex_client
    monkeypatch.setattr(  # a short read timeout, so a late answer is a timeout
        TenantConfig,
        "tripletex_client",
        lambda self, **kw: plain(self, **{"timeout_seconds": 2.0, **kw}),
    )
    path, fault = E2E_CASES[entity]
    endpoint = f"POST /v2/{entity}/list"
    tripletex_sandbox.add_fault(path, method="POST", after_commit=True, **fault)
    try:
        first = tenant.run()
        _settled(tripletex_sandbox, tenant.tripletex_key, endpoint, 1)
    finally:
        tripletex_sandbox.clear_faults()
    assert first.success, failure_text(first)

    # the batch landed once and was not sent again
    assert tripletex_sandbox.stats(tenant.tripletex_key)["requests"][endpoint] == 1
    keys = _tripletex_keys(tenant, entity)
    assert len(keys) == len(set(keys)), "a key exists twice in Tripletex"
    open_intents = tenant.query(
        "SELECT svenn_id, key FROM sync.operations WHERE run_id = ? AND entity = ? "
        "AND target = 'tripletex' AND operation = 'create' AND state = 'intent' "
        "ORDER BY svenn_id",
        first.run_id,
        entity,
    )
    assert open_intents, "the creates' outcome is unknown: their intents stay open"
    assert all(key in keys for _, key in open_intents)
    errors = tenant.query(
        "SELECT svenn_id FROM sync.errors WHERE tenant = 'acme' AND entity = ? "
        "AND code = 'API_UNAVAILABLE' AND resolved_at IS NULL ORDER BY svenn_id",
        entity,
    )
    assert errors == [(svenn_id,) for svenn_id, _ in open_intents]

    second = tenant.run()
    assert second.success, failure_text(second)

    assert _tripletex_keys(tenant, entity) == keys, "the next run created nothing again"
    assert tripletex_sandbox.stats(tenant.tripletex_key)["requests"][endpoint] == 1
    linked = tenant.query(
        "SELECT o.svenn_id FROM sync.operations o JOIN sync.links l ON l.tenant = o.tenant "
        "AND l.entity = o.entity AND l.svenn_id = o.svenn_id AND l.tripletex_id = o.result_id "
        "WHERE o.run_id = ? AND o.entity = ? AND o.operation = 'create' AND o.state = 'done' "
        "AND l.state = 'active' ORDER BY o.svenn_id",
        first.run_id,
        entity,
    )
    assert linked == [(svenn_id,) for svenn_id, _ in open_intents], "recovery linked them"
    assert tenant.query(
        "SELECT count(*) FROM sync.errors WHERE tenant = 'acme' AND entity = ? "
        "AND code = 'API_UNAVAILABLE' AND resolved_at IS NULL",
        entity,
    ) == [(0,)]


def test_G5_late_commit_tripletex_employee_create_no_duplicate(
    tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch
):
    _late_commit_no_duplicate(tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch, "employee")


def test_G5_late_commit_tripletex_customer_create_no_duplicate(
    tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch
):
    _late_commit_no_duplicate(tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch, "customer")


def test_G5_late_commit_tripletex_project_create_no_duplicate(
    tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch
):
    _late_commit_no_duplicate(tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch, "project")
