"""G10: every run leaves its ``sync.runs`` row, failed ones included, and analysts read the
error log and the runs from Parquet exports that never block a run."""

from __future__ import annotations

import duckdb
import pytest
from dagster import DagsterInstance, RunsFilter

from sync_pipeline_tests.ops.test_cli_run import _company, _orphaned_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _runs(workspace, tenant: str) -> dict[str, dict]:
    with workspace.db() as conn:
        cur = conn.execute(
            "SELECT run_id, outcome, reason, started_at, finished_at FROM sync.runs "
            "WHERE tenant = ?",
            [tenant],
        )
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _dagster_runs(workspace, tenant: str) -> dict[str, str]:
    instance = DagsterInstance.from_config(str(workspace.root / "dagster_home"))
    try:
        runs = instance.get_runs(
            RunsFilter(job_name="sync_job", tags={"dagster/partition": tenant})
        )
        return {run.run_id: run.status.value for run in runs}
    finally:
        instance.dispose()


def _exported_runs(workspace, tenant: str) -> dict[str, str]:
    path = workspace.root / "data" / "exports" / "runs" / f"tenant={tenant}" / "data.parquet"
    rows = duckdb.sql("SELECT run_id, outcome FROM read_parquet($p)", params={"p": str(path)})
    return dict(rows.fetchall())


def test_G10_failed_run_leaves_runs_row(workspace, tripletex_sandbox, svenn_sandbox):
    workspace.add_tenant(
        "nede",
        svenn_url=svenn_sandbox.base_url,
        svenn_key="no-such-api-key",  # the Svenn sandbox refuses the extract (401)
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(),
    )
    result = workspace.cli("run", "--tenant", "nede")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]

    (run_id, status), *more = _dagster_runs(workspace, "nede").items()
    assert not more and status == "FAILURE"
    row = _runs(workspace, "nede")[run_id]
    assert row["outcome"] == "failed" and row["finished_at"] >= row["started_at"]
    assert row["reason"] and "extract" in row["reason"]
    assert "no-such-api-key" not in row["reason"]
    assert _exported_runs(workspace, "nede") == {run_id: "failed"}


def test_G10_runs_nobody_recorded_are_backfilled_by_the_next_run(
    workspace, tripletex_sandbox, svenn_sandbox
):
    """A run killed outright (or failed while the database was held) wrote no row; the
    tenant's next run records it from the Dagster run."""
    _company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    killed = _orphaned_run(workspace, "acme")
    result = workspace.cli("run", "--tenant", "acme")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    runs = _runs(workspace, "acme")
    assert runs[killed]["outcome"] == "failed"
    assert "killed" in runs[killed]["reason"]
    outcomes = sorted(row["outcome"] for row in runs.values())
    assert outcomes == ["failed", "success"]
    assert set(_exported_runs(workspace, "acme")) == set(runs)


def test_G10_analyst_exports_never_lock(workspace, tripletex_sandbox, svenn_sandbox):
    """An analyst reading the exports (a DuckDB session over the Parquet file, and the file
    held open) while a run writes: the run succeeds and replaces the export, and the reader
    keeps a whole file."""
    _company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    first = workspace.cli("run", "--tenant", "acme")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    path = workspace.root / "data" / "exports" / "runs" / "tenant=acme" / "data.parquet"
    analyst = duckdb.connect()  # in memory: never the live database file
    analyst.read_parquet(str(path)).create_view("runs")
    assert analyst.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    with open(path, "rb") as held:
        second = workspace.cli("run", "--tenant", "acme")
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        old = held.read()
    assert old[:4] == b"PAR1" and old[-4:] == b"PAR1"  # the reader's file stayed whole
    assert analyst.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    assert sorted(_exported_runs(workspace, "acme").values()) == ["success", "success"]
    analyst.close()
