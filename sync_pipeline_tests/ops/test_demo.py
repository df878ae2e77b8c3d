"""`make demo` up to the end of the first sync (the CI variant, --stop-after-sync)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refuses(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return True
    return False


@pytest.mark.integration
@pytest.mark.slow
def test_demo_serves_the_ui_and_ctrl_c_stops_everything_it_started(workspace):
    ui_port = _free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync_pipeline.demo",
            "--tripletex-port",
            "0",
            "--svenn-port",
            "0",
            "--ui-port",
            str(ui_port),
        ],
        env=workspace.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal's process group, which Ctrl-C signals as a whole
    )
    seen: list[str] = []
    try:
        for line in demo.stdout:  # the webserver's own log line says it is listening
            seen.append(line)
            if "Serving dagster-webserver on" in line:
                break
        else:
            pytest.fail("the demo ended before serving the UI:\n" + "".join(seen[-40:]))
        ui = f"http://127.0.0.1:{ui_port}/server_info"
        with requests.Session() as http:  # the log line comes just before the socket listens
            http.mount("http://", HTTPAdapter(max_retries=Retry(connect=40, backoff_factor=0.1)))
            assert http.get(ui, timeout=10).status_code == 200
            # issue 16: no first-visit dialog (the instance's nux setting), the error log's page
            graphql = f"http://127.0.0.1:{ui_port}/graphql"
            answer = http.post(graphql, json={"query": "{ shouldShowNux }"}, timeout=10)
            assert answer.json() == {"data": {"shouldShowNux": False}}
            page = f"http://127.0.0.1:{ui_port}/assets/sync/errors?view=partitions&partition=demo"
            assert f"the error log of tenant 'demo': {page}\n" in seen
            assert http.get(page, timeout=10).status_code == 200
        assert not [line for line in seen if "superseded" in line.lower()]  # started as dg dev
        apis = [
            line.split(": ", 1)[1].strip()
            for line in seen
            if line.startswith(("tripletex:", "svenn:"))
        ]
        assert len(apis) == 2
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, rest[-3000:]
    assert _refuses(ui) and all(_refuses(api) for api in apis)


def test_demo_instance_file_we_wrote_before_nux_gains_it(tmp_path, monkeypatch):
    """Issue 16: a DAGSTER_HOME from before the nux setting is still ours, so it is rewritten
    and the UI stops showing the first-visit dialog there too."""
    import yaml

    from sync_pipeline.ops import instance as ops_instance

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(ops_instance._EARLIER_DAGSTER_YAMLS[0])
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(ops_instance.POSTGRES_URL_ENV, raising=False)
    ops_instance.dagster_home()
    assert yaml.safe_load((home / "dagster.yaml").read_text())["nux"] == {"enabled": False}
