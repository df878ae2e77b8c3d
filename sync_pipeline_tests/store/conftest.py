"""Fixtures of the state-store tests: a DuckLake of the test's own (catalog on the test
PostgreSQL), tenants backed by sandbox companies, and tenant runs in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sync_pipeline.resources import backends
from sync_pipeline_tests.conftest import REPO_ROOT, use_lake
from sync_pipeline_tests.ops.conftest import Workspace


@pytest.fixture
def lake(lakes, monkeypatch, request):
    """A migrated, empty lake that ``SYNC_STORE`` points at (here and in child processes)."""
    config = lakes.new(request.node.name[-40:])
    use_lake(monkeypatch, config)
    try:
        yield config
    finally:
        lakes.drop(config)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def add_company(workspace, tripletex_sandbox, svenn_sandbox, key: str) -> None:
    """A tenant backed by its own pair of sandbox companies holding the demo world."""
    workspace.add_tenant(
        key,
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_sandbox.new_company(seed="demo"),
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(seed="demo"),
    )


def start_run(workspace, tenant: str) -> subprocess.Popen:
    """``sync_job`` for the tenant in a process of its own (a run worker, another machine)."""
    env = {**workspace.env, "SYNC_EXPORT_DIR": str(workspace.root / "exports" / tenant)}
    return subprocess.Popen(
        [sys.executable, "-m", "sync_pipeline_tests.store.run_tenant",
         str(workspace.root / "tenants.yaml"), tenant],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the run printed no result (rc={proc.returncode}):\n{err[-3000:]}"
    return {**json.loads(lines[-1]), "stderr": err}


def query(sql: str, *params) -> list[tuple]:
    with backends.open_store() as conn:
        return conn.execute(sql, list(params)).fetchall()
