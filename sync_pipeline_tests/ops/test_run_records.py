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
    # the first step that asks Svenn anything (the G11 binding check) names the refusal
    assert row["reason"] and "sync__tenant_binding" in row["reason"] and "401" in row["reason"]
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


def _failed_daemon_run(instance, tenant: str):
    """A scheduled run (launched by the daemon, not the CLI) that failed before its apply."""
    import uuid

    from dagster import DagsterEventType
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    run = DagsterRun(
        job_name="sync_job",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.STARTED,
        tags={"dagster/partition": tenant, "sync_pipeline/origin": "schedule:incremental"},
    )
    instance.add_run(run)
    instance.report_run_failed(run, "sync__extract: the Svenn API refused the key (401)")
    (entry,) = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    return instance.get_run_by_id(run.run_id), entry.dagster_event


def test_G10_failed_runs_sensor_records_a_scheduled_run(tmp_path, monkeypatch):
    import subprocess
    import sys

    from dagster import build_run_status_sensor_context

    from sync_pipeline.resources.storage import SyncDuckDB
    from sync_pipeline.sensors import failed_runs_sensor

    monkeypatch.setenv("SYNC_EXPORT_DIR", str(tmp_path / "exports"))
    database = str(tmp_path / "state.duckdb")
    instance = DagsterInstance.ephemeral()

    def evaluate(run, event):
        context = build_run_status_sensor_context(
            sensor_name="failed_runs_recorded",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"duckdb": SyncDuckDB(database=database)},
        ).for_run_failure()
        return failed_runs_sensor(context)

    def rows():
        with duckdb.connect(database) as conn:
            return conn.execute("SELECT run_id, outcome, reason FROM sync.runs").fetchall()

    # The file held by another process (an analyst's session): the sensor skips, never waits.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({database!r}); "
         "print('holding', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        run, event = _failed_daemon_run(instance, "acme")
        skipped = evaluate(run, event)
        assert "next run" in skipped.skip_message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    # Once free, the sensor records it (and any other failed run of the tenant without a row).
    later, later_event = _failed_daemon_run(instance, "acme")
    assert evaluate(later, later_event) is None
    assert sorted(rows()) == sorted(
        [
            (run.run_id, "failed", "sync__extract: the Svenn API refused the key (401)"),
            (later.run_id, "failed", "sync__extract: the Svenn API refused the key (401)"),
        ]
    )
    path = tmp_path / "exports" / "runs" / "tenant=acme" / "data.parquet"
    assert duckdb.read_parquet(str(path)).count("*").fetchall() == [(2,)]
