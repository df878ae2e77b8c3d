"""`sync-pipeline run` (one tenant or `--all`), `plan` and `confirm-deletes` against both
sandboxes, through the console script."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import pytest
from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from sync_pipeline.model import CODES
from sync_pipeline.tenants import load_tenants
from sync_pipeline_tests.ops.conftest import parse_summary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _company(workspace, tripletex_sandbox, svenn_sandbox, key, *, mode="active", **seed):
    """A tenant backed by its own pair of sandbox companies holding one matched world."""
    options = {"seed": "demo"} | seed
    workspace.add_tenant(
        key,
        mode=mode,
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_sandbox.new_company(**options),
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(**options),
    )


def _writes(sandbox, workspace, tenant) -> int:
    settings = workspace.tenants[tenant]
    key = settings["svenn"]["api_key"] if sandbox.kind == "svenn" else None
    key = key or settings["tripletex"]["employee_token"]
    return sandbox.stats(key)["writes"]


def _instance_runs(workspace, tenant):
    instance = DagsterInstance.from_config(str(workspace.root / "dagster_home"))
    try:
        return instance.get_runs(
            RunsFilter(job_name="sync_job", tags={"dagster/partition": tenant})
        )
    finally:
        instance.dispose()


def _linked_pairs_agree(workspace, tenant: str) -> int:
    """Every active customer link joins two records of this tenant's companies with one name."""
    config = load_tenants(workspace.root / "tenants.yaml")[tenant]
    svenn = {c["id"]: c for c in config.svenn_client().list_all("customers")}
    client = config.tripletex_client()
    tripletex = {
        c["id"]: c
        for inactive in (False, True)  # the API hides inactive customers unless asked (C7)
        for c in client.list_all("/customer", params={"isInactive": inactive}, fields="id,name")
    }
    with workspace.db() as conn:
        links = conn.execute(
            """SELECT svenn_id, tripletex_id FROM sync.links
               WHERE tenant = ? AND entity = 'customer' AND state = 'active'""",
            [tenant],
        ).fetchall()
    assert links
    for svenn_id, tripletex_id in links:
        assert svenn[svenn_id]["name"] == tripletex[tripletex_id]["name"]
    return len(links)


def test_G6_run_syncs_a_tenant_then_a_second_run_writes_nothing(
    workspace, tripletex_sandbox, svenn_sandbox
):
    _company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    first = workspace.cli("run", "--tenant", "acme", "--full")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "  ok  " in first.stdout  # progress, one line per step
    summary = parse_summary(first.stdout)
    assert set(summary) == {"acme/employee", "acme/customer", "acme/project"}
    assert sum(r["created"] + r["linked"] for r in summary.values()) > 0
    _linked_pairs_agree(workspace, "acme")

    errors = json.loads(workspace.cli("errors", "--tenant", "acme", "--format", "json").stdout)
    assert errors and {e["code"] for e in errors} <= set(CODES)

    writes = (
        _writes(tripletex_sandbox, workspace, "acme"),
        _writes(svenn_sandbox, workspace, "acme"),
    )
    second = workspace.cli("run", "--tenant", "acme")
    assert second.returncode == 0, second.stderr[-3000:]
    again = parse_summary(second.stdout)
    assert all(r["created"] == r["updated"] == r["linked"] == 0 for r in again.values())
    assert (
        _writes(tripletex_sandbox, workspace, "acme"),
        _writes(svenn_sandbox, workspace, "acme"),
    ) == writes
    runs = _instance_runs(workspace, "acme")
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 2  # shown in the UI
    assert runs[1].tags.get("sync_pipeline/full_extract") == "true"

    listing = workspace.cli("tenants").stdout
    assert "acme" in listing and "FAILING" not in listing


def test_G9_plan_and_review_write_nothing_until_approved(
    workspace, tripletex_sandbox, svenn_sandbox
):
    _company(workspace, tripletex_sandbox, svenn_sandbox, "bygg", mode="review")
    plan = workspace.cli("plan", "--tenant", "bygg")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert "plan of bygg:" in plan.stdout and "create" in plan.stdout
    review = workspace.cli("run", "--tenant", "bygg")
    assert review.returncode == 0, review.stderr[-3000:]
    assert "review mode" in review.stdout
    assert _writes(tripletex_sandbox, workspace, "bygg") == 0
    assert _writes(svenn_sandbox, workspace, "bygg") == 0

    assert workspace.cli("approve", "--tenant", "bygg", "--by", "kari").returncode == 0
    live = workspace.cli("run", "--tenant", "bygg")
    assert live.returncode == 0, live.stderr[-3000:]
    assert "review mode" not in live.stdout
    assert _writes(tripletex_sandbox, workspace, "bygg") > 0
    _linked_pairs_agree(workspace, "bygg")


def test_run_with_rejected_credentials_fails_with_a_one_line_reason(
    workspace, tripletex_sandbox, svenn_sandbox
):
    workspace.add_tenant(
        "nede",
        svenn_url=svenn_sandbox.base_url,
        svenn_key="no-such-api-key",
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key="no-such-employee-token",
    )
    orphan = _orphaned_run(workspace, "nede")
    result = workspace.cli("run", "--tenant", "nede")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sync-pipeline: run failed: nede:")
    assert "no-such" not in result.stdout + result.stderr  # credentials never shown
    statuses = {r.run_id: r.status for r in _instance_runs(workspace, "nede")}
    assert len(statuses) == 2 and set(statuses.values()) == {DagsterRunStatus.FAILURE}
    assert orphan in statuses  # a killed run no longer shows as running


def _orphaned_run(workspace, tenant: str) -> str:
    """A run left 'started' by a sync-pipeline process that was killed."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    home = workspace.root / "dagster_home"
    home.mkdir(exist_ok=True)
    instance = DagsterInstance.from_config(str(home))
    try:
        run = DagsterRun(
            job_name="sync_job",
            run_id=str(uuid.uuid4()),
            status=DagsterRunStatus.STARTED,
            tags={
                "dagster/partition": tenant,
                "sync_pipeline/pid": str(probe.pid),
                "sync_pipeline/host": socket.gethostname(),
            },
        )
        instance.add_run(run)
        return run.run_id
    finally:
        instance.dispose()


def test_two_tenants_sync_at_the_same_time_through_the_instance(
    workspace, tripletex_sandbox, svenn_sandbox
):
    _company(workspace, tripletex_sandbox, svenn_sandbox, "nord")
    _company(workspace, tripletex_sandbox, svenn_sandbox, "sor", seed="world", world_seed=7)
    procs = {key: workspace.cli_background("run", "--tenant", key) for key in ("nord", "sor")}
    outputs = {key: proc.communicate(timeout=600) for key, proc in procs.items()}
    for key, proc in procs.items():
        assert proc.returncode == 0, outputs[key][0][-3000:] + outputs[key][1][-3000:]
    for key in procs:
        assert [r.status for r in _instance_runs(workspace, key)] == [DagsterRunStatus.SUCCESS]
        assert _linked_pairs_agree(workspace, key) > 0
    with workspace.db() as conn:
        tenants = conn.execute("SELECT DISTINCT tenant FROM sync.links ORDER BY 1").fetchall()
    assert tenants == [("nord",), ("sor",)]


def test_run_all_syncs_every_tenant_and_names_the_one_that_failed(
    workspace, tripletex_sandbox, svenn_sandbox
):
    _company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    workspace.add_tenant(
        "nede",
        svenn_url=svenn_sandbox.base_url,
        svenn_key="no-such-api-key",
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key="no-such-employee-token",
    )
    result = workspace.cli("run", "--all")

    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sync acme" in result.stdout and "sync nede" in result.stdout  # both attempted
    assert set(parse_summary(result.stdout)) == {"acme/employee", "acme/customer", "acme/project"}
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sync-pipeline: run failed: nede:")
    assert _writes(tripletex_sandbox, workspace, "acme") > 0
    assert [r.status for r in _instance_runs(workspace, "acme")] == [DagsterRunStatus.SUCCESS]


def test_G7_confirm_deletes_lets_the_next_run_carry_out_the_held_deletions(
    workspace, tripletex_sandbox, svenn_sandbox
):
    workspace.add_tenant(
        "acme",
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_sandbox.new_company(seed="demo"),
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(seed="demo"),
        mass_delete_threshold=0.01,
        mass_delete_min_count=3,
    )
    first = workspace.cli("run", "--tenant", "acme", "--full")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    config = load_tenants(workspace.root / "tenants.yaml")["acme"]
    tripletex, svenn = config.tripletex_client(), config.svenn_client()
    used_tx = {
        p["customer"]["id"]
        for p in tripletex.list_all("/project", fields="customer(id)")
        if p.get("customer")
    }
    used_sv = {p["customer_id"] for p in svenn.list_all("projects")}
    with workspace.db() as conn:
        links = conn.execute(
            "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = 'acme' "
            "AND entity = 'customer' AND state = 'active' ORDER BY svenn_id"
        ).fetchall()
    gone = [(s, t) for s, t in links if s not in used_sv and t not in used_tx][:3]
    assert len(gone) == 3
    for _, tripletex_id in gone:  # C7: deleted in Tripletex → to be deleted in Svenn
        tripletex.delete(f"/customer/{tripletex_id}")

    def live() -> set[int]:
        return {c["id"] for c in svenn.list_all("customers")}

    held = workspace.cli("run", "--tenant", "acme", "--full")
    assert held.returncode == 0, held.stdout[-3000:] + held.stderr[-3000:]
    assert "held by the mass-deletion guard" in held.stdout
    assert {s for s, _ in gone} <= live()  # nothing deleted in Svenn yet
    errors = json.loads(workspace.cli("errors", "--tenant", "acme", "--format", "json").stdout)
    assert "MASS_DELETE_HELD" in {e["code"] for e in errors}

    confirm = workspace.cli("confirm-deletes", "--tenant", "acme", "--by", "kari")
    assert confirm.returncode == 0 and "confirmed by kari" in confirm.stdout
    applied = workspace.cli("run", "--tenant", "acme", "--full")
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]

    assert not {s for s, _ in gone} & live()
    errors = json.loads(workspace.cli("errors", "--tenant", "acme", "--format", "json").stdout)
    assert "MASS_DELETE_HELD" not in {e["code"] for e in errors}
    with workspace.db() as conn:
        consumed = conn.execute(
            "SELECT consumed_by_run IS NOT NULL FROM sync.approvals WHERE action = 'confirm_deletes'"
        ).fetchall()
    assert consumed == [(True,)]  # the release counts once; later mass deletions hold again
    tripletex.close()
    svenn.close()
