"""``python -m sync_pipeline.demo``: the whole product on a fresh machine (``make demo``).

Starts both sandboxes with the demo world, writes ``data/tenants.yaml`` for them,
runs a first sync in review mode and shows its plan (G9), approves the tenant and
syncs again so the plan is applied, prints the summary and the open errors, then
serves the Dagster UI on 127.0.0.1:3000 (``dg dev``, without the first-visit dialog) and
prints the page of the demo tenant's error log, until Ctrl-C, which stops everything the
demo started. ``--stop-after-sync`` ends before the UI (CI).

The demo starts from a clean slate every time (the sandboxes hold no state across
restarts, so neither may the sync database); it refuses to touch a tenants file or
a database that holds anything but the demo tenant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from sync_pipeline.ops import EXIT_OK, OperatorError, decisions, reports, runs
from sync_pipeline.ops.instance import dagster_instance
from sync_pipeline.ops.progress import quiet_console
from sync_pipeline.ops.store import connect, open_db
from sync_pipeline.resources.storage import duckdb_path
from sync_pipeline.sandbox.process import SandboxProcess, SandboxStartError
from sync_pipeline.tenants import tenants_file_path

TENANT = "demo"
MARKER = "# Written by `python -m sync_pipeline.demo` for the sandboxes; rewritten on every demo.\n"
REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "data" / "tenants.template.yaml"


class DemoError(Exception):
    pass


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _check_ours(tenants_file: Path, database: Path) -> None:
    """Refuse to overwrite anything that is not the demo's own."""
    if tenants_file.exists() and not tenants_file.read_text(encoding="utf-8").startswith(MARKER):
        raise DemoError(
            f"{tenants_file} exists and was not written by the demo; move it away or point "
            "SYNC_TENANTS_FILE and SYNC_DUCKDB_PATH elsewhere for the demo"
        )
    if database.exists():
        try:
            with connect(str(database), read_only=True) as conn:
                tenants = {
                    row[0]
                    for row in conn.execute(
                        "SELECT DISTINCT tenant FROM sync.links UNION SELECT tenant FROM sync.runs"
                    ).fetchall()
                }
        except duckdb.Error as exc:
            raise DemoError(f"{database}: cannot inspect the sync database ({exc})") from None
        if tenants - {TENANT}:
            raise DemoError(
                f"{database} holds other tenants ({', '.join(sorted(tenants - {TENANT}))}); "
                "point SYNC_DUCKDB_PATH elsewhere for the demo"
            )


def _fresh_database(database: Path) -> None:
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)


def render_tenants_file(template: str, tripletex: SandboxProcess, svenn: SandboxProcess) -> str:
    """The template with the sandboxes' addresses and credentials, in review mode."""
    text = (
        template.replace("http://127.0.0.1:8801/v2", tripletex.base_url.rstrip("/"))
        .replace("http://127.0.0.1:8802/api/v1", svenn.base_url.rstrip("/"))
        .replace("${SVENN_API_KEY}", svenn.api_key)
        .replace("${TRIPLETEX_CONSUMER_TOKEN}", tripletex.consumer_token)
        .replace("${TRIPLETEX_EMPLOYEE_TOKEN}", tripletex.employee_token)
    )
    return MARKER + re.sub(r"^(\s+)mode: active\s*$", r"\1mode: review", text, flags=re.MULTILINE)


def _latest_plan_run(tenant: str) -> str | None:
    with open_db() as conn:
        row = conn.execute(
            "SELECT run_id FROM sync.plan WHERE tenant = ? ORDER BY planned_at DESC LIMIT 1",
            [tenant],
        ).fetchone()
    return row[0] if row else None


def _step(command: str, operation: Callable[[], int]) -> None:
    """One operation, shown as the command an operator would type for it."""
    print(f"$ sync-pipeline {command}", flush=True)
    code = operation()
    if code != EXIT_OK:
        raise DemoError(f"`sync-pipeline {command}` exited with {code}")


def first_sync(tenants_file: Path) -> None:
    """Review first (plan only), then go live and apply."""
    _banner("1/3 first sync in review mode: the plan, nothing written (G9)")
    _step(f"run --tenant {TENANT} --full", lambda: runs.run(tenants_file, TENANT, full=True))
    run_id = _latest_plan_run(TENANT)
    if run_id:
        reports.show_plan(TENANT, run_id, limit=25)
    _banner("2/3 approve the go-live and sync again: the plan is applied")
    by = os.environ.get("USER") or "demo"
    _step(
        f"approve --tenant {TENANT} --by {by}",
        lambda: decisions.approve(tenants_file, TENANT, by),
    )
    _step(f"run --tenant {TENANT} --full", lambda: runs.run(tenants_file, TENANT, full=True))
    _banner("3/3 open errors (records not synced, with the reason users see in Svenn)")
    _step(f"errors --tenant {TENANT}", lambda: reports.errors(tenants_file, TENANT))
    _step("tenants", lambda: reports.tenants_overview(tenants_file))


def _interrupt(_signo: int, _frame: object) -> None:
    raise KeyboardInterrupt


def error_log_url(port: int) -> str:
    """The UI page of the demo tenant's error log: the ``sync/errors`` asset, its partition."""
    return f"http://127.0.0.1:{port}/assets/sync/errors?view=partitions&partition={TENANT}"


def serve_ui(port: int) -> int:
    """``dg dev`` (Dagster's current command; ``dagster dev`` warns it is superseded) on
    loopback until Ctrl-C (or SIGTERM); then stops its process group."""
    _banner(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C stops the demo)")
    print(f"the error log of tenant '{TENANT}': {error_log_url(port)}", flush=True)
    print(
        f"why a record is not synced: sync-pipeline explain --tenant {TENANT} "
        "--entity project --svenn-id ID",
        flush=True,
    )
    # Dagster's in-process runs leave their own interrupt handlers behind: restore ours.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dg"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",  # the workspace file: straight to the webserver and daemon, no project scan
            str(REPO_ROOT / "workspace.yaml"),
        ],
        cwd=REPO_ROOT,
        start_new_session=True,  # its own group: stopped below, all of it, whatever the terminal
    )
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Ctrl-C for the whole group (webserver, daemon, code server), then kill what lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the parent too
    proc.wait()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sync_pipeline.demo", description=__doc__)
    p.add_argument("--stop-after-sync", action="store_true", help="end before serving the UI")
    p.add_argument("--tripletex-port", type=int, default=8801, help="0 picks a free port")
    p.add_argument("--svenn-port", type=int, default=8802, help="0 picks a free port")
    p.add_argument("--ui-port", type=int, default=3000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_console()
    tenants_file = tenants_file_path()
    database = Path(duckdb_path())
    started: list[SandboxProcess] = []
    try:
        _check_ours(tenants_file, database)
        _fresh_database(database)
        # the instance up front: on PostgreSQL (SYNC_DAGSTER_POSTGRES_URL) one line if it does not answer
        dagster_instance().dispose()
        _banner("starting the Tripletex and Svenn sandboxes with the demo world")
        for kind, port in (("tripletex", args.tripletex_port), ("svenn", args.svenn_port)):
            started.append(SandboxProcess.start(kind, "--port", str(port), "--seed", "demo"))
            print(f"{kind}: {started[-1].base_url}", flush=True)
        tripletex, svenn = started
        tenants_file.parent.mkdir(parents=True, exist_ok=True)
        tenants_file.write_text(
            render_tenants_file(TEMPLATE.read_text(encoding="utf-8"), tripletex, svenn),
            encoding="utf-8",
        )
        print(f"wrote {tenants_file} (tenant '{TENANT}', review mode)", flush=True)
        first_sync(tenants_file)
        if args.stop_after_sync:
            _banner("demo complete (--stop-after-sync: not serving the UI)")
            return 0
        return serve_ui(args.ui_port)
    except (DemoError, SandboxStartError, OSError, OperatorError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        for sandbox in reversed(started):
            sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
