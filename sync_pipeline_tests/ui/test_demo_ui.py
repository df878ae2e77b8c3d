"""The demo's Dagster UI in a real browser (issue 16): headless Chromium driven by Playwright
against what `make demo` serves — the sandboxes, the review-then-apply sync and `dg dev`, all
started by the demo itself, so the test sees exactly what a newcomer sees.

One demo and one webserver for the whole test (the checks run in one test function, so
pytest-xdist cannot split them over two demos). Chromium comes from the system (Debian's
``chromium`` package; ``.ci/run`` installs it); Playwright never downloads a browser here.
Where none is found the test skips, unless ``SYNC_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from sync_pipeline_tests.ops.conftest import CONSOLE_SCRIPT, REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Set by .ci/run: a missing browser fails the test instead of skipping it.
BROWSER_REQUIRED = os.environ.get("SYNC_REQUIRE_BROWSER") == "1"
#: The sync's three stages, in the order the data flows.
GROUPS = ["extract", "rules", "apply"]
#: Beside them, the state store's upkeep (its own schedule; not part of a tenant's run).
OTHER_GROUPS = ["maintenance"]
#: Rows the error-log asset previews in its markdown tables (assets/apply/assets.py).
PREVIEW_ROWS = 20
EXPLAIN_COMMAND = re.compile(
    r"sync-pipeline explain --tenant demo --entity (project|customer|employee) "
    r"--(svenn|tripletex)-id \S+"
)
#: A UI step (page load, GraphQL answer, rendering) on a loaded 2-core machine.
UI_TIMEOUT_MS = 60_000


def _browser_unavailable(reason: str):
    if BROWSER_REQUIRED:
        pytest.fail(f"SYNC_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"browser test skipped: {reason} (CI sets SYNC_REQUIRE_BROWSER=1)")


def _chromium() -> str:
    """The system's Chromium (never one Playwright would download)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    _browser_unavailable("no Chromium found on PATH (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _browser_unavailable(f"Playwright for Python is not installed ({exc})")
    from playwright.sync_api import expect

    executable = _chromium()
    expect.set_options(timeout=UI_TIMEOUT_MS)  # the default 5 s is short on a loaded machine
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Demo:
    """The running demo: its UI, what it printed and the files it works in."""

    ui: str
    error_log_url: str
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    def printed(self) -> str:
        return "".join(self.output)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(browser, tmp_path_factory) -> Iterator[Demo]:
    """`python -m sync_pipeline.demo` on free ports with its own data folder, up to the UI;
    Ctrl-C (SIGINT to its group) at the end, as a user stops it."""
    root = tmp_path_factory.mktemp("demo_ui")
    env = {
        **os.environ,
        "SYNC_TENANTS_FILE": str(root / "tenants.yaml"),
        "SYNC_DUCKDB_PATH": str(root / "pipeline.duckdb"),
        "SYNC_EXPORT_DIR": str(root / "exports"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "PYTHONUNBUFFERED": "1",
    }
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "sync_pipeline.demo"),
            *("--tripletex-port", "0", "--svenn-port", "0", "--ui-port", str(port)),
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    serving = threading.Event()

    def drain() -> None:  # keeps reading, so the webserver never blocks on a full pipe
        for line in proc.stdout:
            output.append(line)
            if "Serving dagster-webserver on" in line:
                serving.set()
        serving.set()  # the demo ended

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        serving.wait(timeout=600)
        if proc.poll() is not None or not serving.is_set():
            pytest.fail("the demo did not serve the UI:\n" + "".join(output[-60:]))
        ui = f"http://127.0.0.1:{port}"
        with requests.Session() as http:  # the log line comes just before the socket listens
            http.mount("http://", HTTPAdapter(max_retries=Retry(connect=40, backoff_factor=0.1)))
            assert http.get(f"{ui}/server_info", timeout=10).status_code == 200
        (url,) = [
            line.split(": ", 1)[1].strip()
            for line in output
            if line.startswith("the error log of tenant 'demo':")
        ]
        yield Demo(ui=ui, error_log_url=url, env=env, output=output)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(timeout=10)


def _open_errors_printed(demo: Demo) -> tuple[int, set[str]]:
    """What the demo's terminal said: the number of open errors (`tenants`) and their codes
    (`errors`)."""
    text = demo.printed()
    counts = re.search(r"(\d+) errors, (\d+) warnings, (\d+) info", text)
    assert counts, text[-3000:]
    codes = set(re.findall(r"^demo\s+(?:error|warning|info)\s+([A-Z_]+)\s", text, re.MULTILINE))
    return sum(map(int, counts.groups())), codes


def _first_visit_shows_no_dialog(browser, demo: Demo) -> None:
    """A fresh browser (no stored dismissal) on the start page: the instance tells the page
    not to show the newsletter dialog, and nothing covers the navigation."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.clock.install()  # Dagster opens the dialog 1 s after the answer: time is ours
        with page.expect_response(lambda r: "op=ShouldShowNux" in r.url) as nux:
            page.goto(demo.ui + "/")
        # the instance's `nux: {enabled: false}`; with it on, the dialog opens (checked below)
        assert nux.value.json() == {"data": {"shouldShowNux": False}}, "first-visit dialog on"
        page.clock.fast_forward(5_000)  # well past the dialog's delay, without waiting for it
        expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
        expect(page.get_by_role("dialog")).to_have_count(0)
        # a covered page would not take the click (Playwright checks what receives it)
        page.get_by_role("link", name=re.compile(r"Lineage$")).click(timeout=10_000)
        expect(page).to_have_url(re.compile(r"/asset-groups"))
    finally:
        context.close()


def _asset_graph_shows_the_three_groups(browser, demo: Demo) -> None:
    """The global lineage: one box per group, extract → rules → apply from left to right (and
    the store's maintenance, apart)."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(demo.ui + "/asset-groups")
        names = page.locator("svg foreignObject.group [data-tooltip]")
        expect(names).to_have_count(len(GROUPS) + len(OTHER_GROUPS))
        boxes = {
            text: names.nth(i).bounding_box() for i, text in enumerate(names.all_inner_texts())
        }
        assert sorted(boxes) == sorted(GROUPS + OTHER_GROUPS)
        assert sorted(GROUPS, key=lambda g: boxes[g]["x"]) == GROUPS  # the data flow
    finally:
        context.close()


def _markdown_rows(page, metadata_key: str) -> list[list[str]]:
    """The rows of a markdown table in the asset's metadata, as the UI shows them (its dialog)."""
    from playwright.sync_api import expect

    row = page.locator("tr", has=page.get_by_text(metadata_key, exact=True))
    row.get_by_text("Show Markdown").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(metadata_key, exact=True)).to_be_visible()
    body_rows = dialog.locator("table tbody tr")
    expect(body_rows.first).to_be_visible()
    rows = [body_rows.nth(i).locator("td").all_inner_texts() for i in range(body_rows.count())]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    return rows


def _error_log_shows_open_errors_and_explanations(browser, demo: Demo) -> None:
    """The page the demo prints: the demo tenant's error log with its open errors and, per
    record, the `explain` command that tells its story — which works."""
    from playwright.sync_api import expect

    total, codes = _open_errors_printed(demo)
    assert total > 0 and codes
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(demo.error_log_url)
        count = page.locator("tr", has=page.get_by_text("dagster/row_count", exact=True))
        expect(count.locator("td").nth(1)).to_have_text(str(total))  # as many as the terminal

        open_rows = _markdown_rows(page, "open_errors")
        assert len(open_rows) == min(total, PREVIEW_ROWS)
        assert {r[0] for r in open_rows} <= codes, open_rows
        assert all(r[4].strip() for r in open_rows)  # the Norwegian message

        explain_rows = _markdown_rows(page, "explain_open_errors")
        assert explain_rows and len(explain_rows) <= PREVIEW_ROWS
        assert {r[0] for r in explain_rows} <= codes, explain_rows
        assert all(EXPLAIN_COMMAND.fullmatch(r[5].strip()) for r in explain_rows), explain_rows
    finally:
        context.close()

    # the first row's command, as an operator copies it, tells that record's story
    code, _severity, _entity, _record, message, command = explain_rows[0]
    argv = shlex.split(command)
    story = subprocess.run(
        [str(CONSOLE_SCRIPT), *argv[1:]],
        env=demo.env,
        cwd=Path(demo.env["SYNC_TENANTS_FILE"]).parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert story.returncode == 0, story.stderr[-2000:]
    assert code in story.stdout and message.strip() in story.stdout, story.stdout[-3000:]


def test_demo_ui_in_a_browser_shows_groups_error_log_and_explanations_without_a_dialog(
    browser, demo
):
    _first_visit_shows_no_dialog(browser, demo)
    _asset_graph_shows_the_three_groups(browser, demo)
    _error_log_shows_open_errors_and_explanations(browser, demo)
