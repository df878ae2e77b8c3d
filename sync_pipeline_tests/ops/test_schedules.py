"""Schedules: one run per tenant, never two at once, nightly full; failing tenants flagged."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from sync_pipeline.partitions import FULL_EXTRACT_TAG
from sync_pipeline.schedules import (
    SCHEDULES,
    failing_streak,
    incremental_sync_schedule,
    nightly_full_schedule,
)


def _add_run(instance, tenant: str, status: DagsterRunStatus) -> None:
    instance.add_run(
        DagsterRun(
            job_name="sync_job",
            run_id=str(uuid.uuid4()),
            status=status,
            tags={"dagster/partition": tenant},
        )
    )


@pytest.fixture
def instance(workspace, monkeypatch):
    workspace.add_offline_tenant("acme")
    workspace.add_offline_tenant("bygg")
    workspace.add_offline_tenant("nypart")  # in the file, not a partition yet
    monkeypatch.setenv("SYNC_TENANTS_FILE", str(workspace.root / "tenants.yaml"))
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("tenants", ["acme", "bygg", "gone"])  # gone: left the file
        yield inst


def test_schedules_run_every_15_minutes_and_fully_at_02_oslo():
    by_name = {s.name: s for s in SCHEDULES}
    assert by_name["incremental_sync_every_15_minutes"].cron_schedule == "*/15 * * * *"
    assert by_name["nightly_full_reconcile"].cron_schedule == "0 2 * * *"
    assert {s.execution_timezone for s in SCHEDULES} == {"Europe/Oslo"}
    assert {s.job_name for s in SCHEDULES} == {"sync_job"}


def test_incremental_schedule_requests_one_run_per_configured_tenant(instance):
    requests = incremental_sync_schedule(dg.build_schedule_context(instance=instance))
    assert [r.partition_key for r in requests] == ["acme", "bygg"]
    for request in requests:
        assert request.tags["sync_pipeline/origin"] == "schedule:incremental"
        assert FULL_EXTRACT_TAG not in request.tags
        assert int(request.tags["dagster/max_retries"]) >= 1


def test_nightly_schedule_asks_for_a_full_extract(instance):
    requests = nightly_full_schedule(dg.build_schedule_context(instance=instance))
    assert [r.partition_key for r in requests] == ["acme", "bygg"]
    assert all(r.tags[FULL_EXTRACT_TAG] == "true" for r in requests)


def test_schedule_skips_a_tenant_whose_run_is_still_going(instance):
    _add_run(instance, "acme", DagsterRunStatus.STARTED)
    _add_run(instance, "bygg", DagsterRunStatus.SUCCESS)
    requests = incremental_sync_schedule(dg.build_schedule_context(instance=instance))
    assert [r.partition_key for r in requests] == ["bygg"]


def test_failing_streak_counts_consecutive_failures_newest_first(instance):
    for status in ("FAILURE", "SUCCESS", "FAILURE", "FAILURE"):
        _add_run(instance, "acme", DagsterRunStatus[status])
    _add_run(instance, "bygg", DagsterRunStatus.FAILURE)
    _add_run(instance, "bygg", DagsterRunStatus.SUCCESS)
    assert failing_streak(instance, "acme") == 2
    assert failing_streak(instance, "bygg") == 0


def test_tenants_command_marks_a_tenant_whose_runs_keep_failing(workspace, monkeypatch):
    from sync_pipeline.ops import instance as ops_instance

    workspace.add_offline_tenant("acme")
    workspace.add_offline_tenant("bygg")
    monkeypatch.setenv("DAGSTER_HOME", str(workspace.root / "dagster_home"))
    instance = ops_instance.dagster_instance()
    assert (workspace.root / "dagster_home" / "dagster.yaml").exists()
    _add_run(instance, "acme", DagsterRunStatus.FAILURE)
    _add_run(instance, "acme", DagsterRunStatus.FAILURE)
    _add_run(instance, "bygg", DagsterRunStatus.FAILURE)
    instance.dispose()
    result = workspace.cli("tenants")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert "FAILING (2 runs in a row)" in lines["acme"] and "failed" in lines["acme"]
    assert "FAILING" not in lines["bygg"] and "failed" in lines["bygg"]


def test_the_instance_queues_one_run_per_tenant_and_retries_failed_runs(tmp_path, monkeypatch):
    from sync_pipeline.ops import instance as ops_instance

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    instance = ops_instance.dagster_instance()  # writes dagster.yaml into a new home
    try:
        queue = instance.get_concurrency_config().run_queue_config
        assert {
            "key": "dagster/partition",  # the tenant: one run per value at a time
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in queue.tag_concurrency_limits
        assert instance.run_retries_enabled  # scheduled runs ask for a retry by tag
    finally:
        instance.dispose()
