"""`make demo` up to the end of the first sync (the CI variant, --stop-after-sync)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sync_pipeline_tests.ops.conftest import REPO_ROOT, parse_summary


def _demo(workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sync_pipeline.demo", *args],
        env=workspace.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_G9_demo_reviews_then_applies_and_reports_on_a_fresh_setup(workspace):
    result = _demo(workspace, "--stop-after-sync", "--tripletex-port", "0", "--svenn-port", "0")
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    review, live = out.split("=== 2/3")
    assert "review mode" in review and "plan of demo:" in review
    assert "approved for go-live" in live and "review mode" not in live.split("=== 3/3")[0]
    applied = parse_summary(live)  # the summary table of the applied run
    assert sum(row["created"] for row in applied.values()) > 0
    assert sum(row["linked"] for row in applied.values()) > 0
    assert "open errors" in live and "demo complete" in out
    tenants_file = (workspace.root / "tenants.yaml").read_text()
    assert "mode: review" in tenants_file and "${" not in tenants_file.split("tenants:")[1]
    # the sync recorded its runs in the persistent Dagster instance the UI reads
    assert (workspace.root / "dagster_home" / "dagster.yaml").exists()
    assert any((workspace.root / "dagster_home").rglob("*.db"))


def test_demo_refuses_to_overwrite_a_tenants_file_it_did_not_write(workspace):
    workspace.add_offline_tenant("kunde")
    before = (workspace.root / "tenants.yaml").read_text()
    result = _demo(workspace, "--stop-after-sync")
    assert result.returncode == 1
    assert "was not written by the demo" in result.stderr and "Traceback" not in result.stderr
    assert (workspace.root / "tenants.yaml").read_text() == before
