"""Runs as the schedules launch them: the schedule's run requests, the default executor (one
process per step, steps of a run side by side), two tenants at once through one instance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from sync_pipeline_tests.ops.test_cli_run import _company, _linked_pairs_agree

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def sync_job_def() -> dg.JobDefinition:
    """The code location's ``sync_job``, rebuilt in every step process."""
    from sync_pipeline.definitions import defs

    return defs.resolve_job_def("sync_job")


def test_two_tenants_launched_by_the_schedule_sync_side_by_side(
    workspace, tripletex_sandbox, svenn_sandbox, monkeypatch
):
    from sync_pipeline import cli
    from sync_pipeline.schedules import incremental_sync_schedule
    from sync_pipeline.sensors import ensure_tenant_partitions

    _company(workspace, tripletex_sandbox, svenn_sandbox, "nord")
    _company(workspace, tripletex_sandbox, svenn_sandbox, "sor", seed="world", world_seed=7)
    for name in ("SYNC_TENANTS_FILE", "SYNC_DUCKDB_PATH", "DAGSTER_HOME"):
        monkeypatch.setenv(name, workspace.env[name])  # inherited by the step processes
    instance = cli.dagster_instance()
    try:
        ensure_tenant_partitions(instance, ["nord", "sor"])
        requests = incremental_sync_schedule(dg.build_schedule_context(instance=instance))
        assert [r.partition_key for r in requests] == ["nord", "sor"]

        def launch(request: dg.RunRequest) -> dg.JobExecutionResult:
            tags = {**request.tags, "dagster/partition": request.partition_key}
            return dg.execute_job(dg.reconstructable(sync_job_def), instance, tags=tags)

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(launch, requests))
        for result in results:
            assert result.success, [
                e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
            ]
            step_pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
            assert len(step_pids) > 1  # the steps ran in their own processes
    finally:
        instance.dispose()
    for key in ("nord", "sor"):
        assert _linked_pairs_agree(workspace, key) > 0
