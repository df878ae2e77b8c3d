"""Runs as the schedules launch them: the schedule's run requests, each run in its own process
with the jobs' executor (every step of a run in that run's process, issue 13), two tenants at
once in one instance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sync_pipeline_tests.ops.conftest import REPO_ROOT
from sync_pipeline_tests.ops.test_cli_run import _company, _linked_pairs_agree

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAGSTER = Path(sys.executable).parent / "dagster"


def test_two_tenants_launched_by_the_schedule_sync_side_by_side(
    workspace, tripletex_sandbox, svenn_sandbox, monkeypatch
):
    from sync_pipeline.ops import instance as ops_instance
    from sync_pipeline.schedules import incremental_sync_schedule
    from sync_pipeline.sensors import ensure_tenant_partitions

    _company(workspace, tripletex_sandbox, svenn_sandbox, "nord")
    _company(workspace, tripletex_sandbox, svenn_sandbox, "sor", seed="world", world_seed=7)
    for name in ("SYNC_TENANTS_FILE", "SYNC_DUCKDB_PATH", "DAGSTER_HOME"):
        monkeypatch.setenv(name, workspace.env[name])
    instance = ops_instance.dagster_instance()
    try:
        ensure_tenant_partitions(instance, ["nord", "sor"])
        requests = incremental_sync_schedule(dg.build_schedule_context(instance=instance))
    finally:
        instance.dispose()
    assert [r.partition_key for r in requests] == ["nord", "sor"]

    # the run launcher gives every run its own process; the runs' steps get theirs
    runs = [
        subprocess.Popen(
            [
                str(DAGSTER),
                *("job", "execute", "-m", "sync_pipeline.definitions", "-j", "sync_job"),
                *("--tags", json.dumps({**r.tags, "dagster/partition": r.partition_key})),
            ],
            cwd=REPO_ROOT,
            env=workspace.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in requests
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [out[-3000:] for out in outputs]

    instance = dg.DagsterInstance.from_config(workspace.env["DAGSTER_HOME"])
    step_pids = {}
    try:
        for key in ("nord", "sor"):
            (record,) = instance.get_run_records(
                dg.RunsFilter(job_name="sync_job", tags={"dagster/partition": key})
            )
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            starts = instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START
            )
            step_pids[key] = {e.dagster_event.pid for e in starts}
            assert len(step_pids[key]) == 1  # every step in the run's own process
    finally:
        instance.dispose()
    assert step_pids["nord"] != step_pids["sor"]  # a process per run
    for key in ("nord", "sor"):
        assert _linked_pairs_agree(workspace, key) > 0
