"""The code location as the UI sees it: loads through workspace.yaml and dg, tells its story."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def defs():
    from sync_pipeline.definitions import defs

    return defs


def test_definitions_hold_both_schedules_with_oslo_time(defs):
    incremental = defs.get_schedule_def("incremental_sync_every_15_minutes")
    nightly = defs.get_schedule_def("nightly_full_reconcile")
    assert (incremental.cron_schedule, incremental.execution_timezone) == (
        "*/15 * * * *",
        "Europe/Oslo",
    )
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("0 2 * * *", "Europe/Oslo")
    assert incremental.job_name == nightly.job_name == "sync_job"


def test_failing_tenants_are_flagged_in_the_ui_by_a_run_failure_sensor(defs):
    sensor = defs.get_sensor_def("failing_tenants")
    assert sensor.default_status.value == "RUNNING"


def test_every_asset_is_in_a_pipeline_group_and_explains_itself(defs):
    graph = defs.resolve_asset_graph()
    keys = graph.materializable_asset_keys
    assert keys
    groups = {graph.get(k).group_name for k in keys}
    assert groups == {"extract", "rules", "apply", "maintenance"}
    for key in keys:
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert "team:sync" in node.owners, key
        assert {"duckdb", "python"} <= set(node.kinds), key
    assert graph.asset_check_keys, "asset checks are visible in the UI"


def test_sync_job_covers_all_groups_and_plan_job_writes_nothing(defs):
    graph = defs.resolve_asset_graph()
    sync_keys = defs.resolve_job_def("sync_job").asset_layer.executable_asset_keys
    plan_keys = defs.resolve_job_def("plan_job").asset_layer.executable_asset_keys
    assert {graph.get(k).group_name for k in sync_keys} == {"extract", "rules", "apply"}
    assert {graph.get(k).group_name for k in plan_keys} == {"extract", "rules"}


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        [str(BIN / "dg"), "check", "defs"],
    ],
    ids=["dagster-workspace", "dg"],
)
def test_code_location_loads_for_dagster_dev_and_dg_dev(command, tmp_path):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
