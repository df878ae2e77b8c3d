"""G11: a tenant is bound to one Svenn and one Tripletex company; a run whose credentials
now belong to another company, or to one another tenant is bound to, writes nothing and
exits 2 until an operator rebinds. Through the console script, against both sandboxes."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _tenant(workspace, svenn_sandbox, tripletex_sandbox, key, *, svenn_key, tripletex_key, **kw):
    workspace.add_tenant(
        key,
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_key,
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_key,
        **kw,
    )


def _bound_tenant(workspace, svenn_sandbox, tripletex_sandbox, key="acme") -> tuple[str, str]:
    """A tenant synced once (so bound); returns its Svenn key and Tripletex token."""
    svenn_key = svenn_sandbox.new_company(seed="demo")
    tripletex_key = tripletex_sandbox.new_company(seed="demo")
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        key,
        svenn_key=svenn_key,
        tripletex_key=tripletex_key,
    )
    first = workspace.cli("run", "--tenant", key)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return svenn_key, tripletex_key


def _open_binding_errors(workspace, tenant) -> list[dict]:
    errors = json.loads(workspace.cli("errors", "--tenant", tenant, "--format", "json").stdout)
    return [e for e in errors if e["code"] == "TENANT_BINDING_CHANGED"]


def _last_run(workspace, tenant) -> dict:
    with workspace.db() as conn:
        cur = conn.execute(
            "SELECT run_id, outcome, reason, finished_at FROM sync.runs WHERE tenant = ? "
            "ORDER BY started_at DESC LIMIT 1",
            [tenant],
        )
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def _bindings(workspace, tenant) -> list[tuple]:
    with workspace.db() as conn:
        return conn.execute(
            "SELECT svenn_company_id, tripletex_company_id, bound_by, how, replaced_at IS NULL "
            "FROM sync.tenant_bindings WHERE tenant = ? ORDER BY bound_at",
            [tenant],
        ).fetchall()


def _dagster_statuses(workspace, tenant) -> list[DagsterRunStatus]:
    instance = DagsterInstance.from_config(str(workspace.root / "dagster_home"))
    try:
        runs = instance.get_runs(
            RunsFilter(job_name="sync_job", tags={"dagster/partition": tenant})
        )
        return [r.status for r in runs]  # newest first
    finally:
        instance.dispose()


def _company_ids(svenn_sandbox, tripletex_sandbox, svenn_key, tripletex_key) -> tuple[int, int]:
    from sync_pipeline.resources.svenn import SvennClient
    from sync_pipeline.resources.tripletex import TripletexClient

    svenn = SvennClient(base_url=svenn_sandbox.base_url, api_key=svenn_key)
    tripletex = TripletexClient(
        base_url=tripletex_sandbox.base_url, consumer_token="c", employee_token=tripletex_key
    )
    try:
        return svenn.get_company()["id"], tripletex.who_am_i()["companyId"]
    finally:
        svenn.close()
        tripletex.close()


def test_G11_other_tripletex_company_refused(workspace, tripletex_sandbox, svenn_sandbox):
    svenn_key, tripletex_key = _bound_tenant(workspace, svenn_sandbox, tripletex_sandbox)
    svenn_id, bound_tripletex = _company_ids(
        svenn_sandbox, tripletex_sandbox, svenn_key, tripletex_key
    )
    assert _bindings(workspace, "acme") == [
        (svenn_id, bound_tripletex, _bindings(workspace, "acme")[0][2], "first_run", True)
    ]
    # the tenant's token swapped for another company's, one with data of its own
    other_token = tripletex_sandbox.new_company(seed="demo")
    _, other_company = _company_ids(svenn_sandbox, tripletex_sandbox, svenn_key, other_token)
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        "acme",
        svenn_key=svenn_key,
        tripletex_key=other_token,
    )
    svenn_writes = svenn_sandbox.stats(svenn_key)["writes"]

    refused = workspace.cli("run", "--tenant", "acme")

    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    (line,) = refused.stderr.strip().splitlines()
    assert "'acme'" in line and f"Tripletex company {other_company}" in line
    assert f"bound to Tripletex company {bound_tripletex}" in line and "rebind" in line
    assert other_token not in refused.stdout + refused.stderr
    # nothing written to Svenn, nothing written to (or listed from) the other company
    assert svenn_sandbox.stats(svenn_key)["writes"] == svenn_writes
    other = tripletex_sandbox.stats(other_token)
    assert other["writes"] == 0
    assert not [
        r for r in other["requests"] if r.startswith(("GET /v2/customer", "GET /v2/project"))
    ]
    (error,) = _open_binding_errors(workspace, "acme")
    assert error["severity"] == "error"
    details = error["details"]
    assert details["changed"] == ["tripletex"]
    assert details["bound"]["tripletex"] == bound_tripletex
    assert details["current"]["tripletex"] == other_company
    run = _last_run(workspace, "acme")
    assert run["outcome"] == "failed" and "Tripletex company" in run["reason"]
    assert run["finished_at"] is not None
    with workspace.db() as conn:
        landed = conn.execute(
            "SELECT count(*) FROM sync.extracts WHERE run_id = ?", [run["run_id"]]
        ).fetchone()
    assert landed == (0,)  # refused before any extract landed the other company's data
    assert _dagster_statuses(workspace, "acme")[0] == DagsterRunStatus.FAILURE
    assert "FAILING" not in workspace.cli("tenants").stdout  # one failure is no streak

    plan = workspace.cli("plan", "--tenant", "acme")  # a plan is refused the same way
    assert plan.returncode == 2 and "refused (G11)" in plan.stderr


def test_G11_company_bound_to_another_tenant_refused(workspace, tripletex_sandbox, svenn_sandbox):
    _, acme_token = _bound_tenant(workspace, svenn_sandbox, tripletex_sandbox)
    acme_writes = tripletex_sandbox.stats(acme_token)["writes"]
    bygg_svenn = svenn_sandbox.new_company(seed="demo")
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        "bygg",
        svenn_key=bygg_svenn,
        tripletex_key=acme_token,  # acme's Tripletex token pasted into another tenant
    )

    refused = workspace.cli("run", "--tenant", "bygg")

    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    (line,) = refused.stderr.strip().splitlines()
    assert "'bygg'" in line and "is bound to tenant 'acme'" in line
    assert svenn_sandbox.stats(bygg_svenn)["writes"] == 0
    assert tripletex_sandbox.stats(acme_token)["writes"] == acme_writes
    (error,) = _open_binding_errors(workspace, "bygg")
    assert error["details"]["bound_to_other_tenant"]["tripletex"] == "acme"
    assert _open_binding_errors(workspace, "acme") == []
    assert _bindings(workspace, "bygg") == []

    rebind = workspace.cli("rebind", "--tenant", "bygg", "--by", "kari")
    assert rebind.returncode == 2 and "not rebound" in rebind.stderr
    assert _bindings(workspace, "bygg") == []  # the write refuses a company already bound
    assert len(_open_binding_errors(workspace, "bygg")) == 1


def test_G11_rebind_records_the_new_company_and_the_next_run_syncs(
    workspace, tripletex_sandbox, svenn_sandbox
):
    svenn_key, old_token = _bound_tenant(workspace, svenn_sandbox, tripletex_sandbox)
    svenn_id, old_company = _company_ids(svenn_sandbox, tripletex_sandbox, svenn_key, old_token)
    new_token = tripletex_sandbox.new_company(seed="demo")
    _, new_company = _company_ids(svenn_sandbox, tripletex_sandbox, svenn_key, new_token)
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        "acme",
        svenn_key=svenn_key,
        tripletex_key=new_token,
    )
    assert workspace.cli("run", "--tenant", "acme").returncode == 2

    rebind = workspace.cli("rebind", "--tenant", "acme", "--by", "kari")

    assert rebind.returncode == 0, rebind.stderr
    assert "bound by kari" in rebind.stdout and f"Tripletex company {new_company}" in rebind.stdout
    (old, new) = _bindings(workspace, "acme")
    assert old[:2] == (svenn_id, old_company) and old[4] is False  # kept as history
    assert new == (svenn_id, new_company, "kari", "rebind", True)
    assert _open_binding_errors(workspace, "acme") == []
    with workspace.db() as conn:
        resolved = conn.execute(
            "SELECT count(*) FROM sync.errors WHERE tenant = 'acme' "
            "AND code = 'TENANT_BINDING_CHANGED' AND resolved_at IS NOT NULL"
        ).fetchone()
    assert resolved == (1,)

    again = workspace.cli("run", "--tenant", "acme")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _last_run(workspace, "acme")["outcome"] in ("success", "partial")


def test_G11_approve_records_the_binding_and_refuses_a_company_bound_elsewhere(
    workspace, tripletex_sandbox, svenn_sandbox
):
    svenn_key = svenn_sandbox.new_company(seed="demo")
    token = tripletex_sandbox.new_company(seed="demo")
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        "acme",
        mode="review",
        svenn_key=svenn_key,
        tripletex_key=token,
    )
    _tenant(
        workspace,
        svenn_sandbox,
        tripletex_sandbox,
        "bygg",
        mode="review",
        svenn_key=svenn_sandbox.new_company(seed="demo"),
        tripletex_key=token,
    )
    approve = workspace.cli("approve", "--tenant", "acme", "--by", "kari")
    assert approve.returncode == 0, approve.stderr
    svenn_id, tripletex_id = _company_ids(svenn_sandbox, tripletex_sandbox, svenn_key, token)
    assert _bindings(workspace, "acme") == [(svenn_id, tripletex_id, "kari", "approve", True)]

    refused = workspace.cli("approve", "--tenant", "bygg", "--by", "kari")
    assert refused.returncode == 2 and "is bound to tenant 'acme'" in refused.stderr
    with workspace.db() as conn:
        approvals = conn.execute("SELECT tenant FROM sync.approvals").fetchall()
    assert approvals == [("acme",)]
