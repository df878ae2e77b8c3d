"""Benchmark the fixed cost of one tenant run (issue 13): CPU-seconds and wall time of a no-op
incremental ``sync_job`` run of a small tenant, launched the way the schedules launch it.

    .venv/bin/python scripts/bench_noop_run.py [--runs N] [--profile]

Starts both sandboxes with the demo world (a small company), syncs it fully once and
incrementally once (in process, through the CLI) so the next run has nothing to do, then
measures no-op incremental runs on the path a scheduled run takes after the run queue:
the instance's ``DefaultRunLauncher`` asks the code server (``dagster api grpc``, as the
daemon and ``dg dev`` start it) to start the run, the code server spawns the run worker,
and the run worker executes every step in its own process (the jobs' in-process executor).

The code server is this script's child and is stopped after each measured run, so
``getrusage(RUSAGE_CHILDREN)`` counts everything the run made: the code server, the run
worker and every step process (psutil is not a dependency); the script is a child
subreaper (Linux), so processes orphaned on the way (a forkserver) are waited for and
counted too. A code server started and
stopped without a run, for as long as a run takes, is measured the same way and subtracted.
The run is submitted with ``dagster job launch`` against the same code server; that CLI
process (which the daemon replaces in production) is measured on its own and not counted.

Until issue 13 the jobs ran the multiprocess executor (a fresh process per step): 75–79
CPU-s per no-op run, measured by this script then (``docs/noop-run-cost.md``).
``--profile`` adds: the CPU of importing the code
location in a fresh interpreter (what every process pays), and a cProfile of a no-op run in
this process (``execute_in_process``, as the CLI runs it), printed by cumulative time, with
the number of tenants-file reads.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENANT = "bench"
BIN = Path(sys.executable).parent
#: Children that outlive the measurements (the sandboxes), never reaped by ``_reap_orphans``.
KEEP: set[int] = set()
#: Executors to compare, by run config (None: the job's own, in process).
VARIANTS = {"in process (the jobs' executor)": None}


def _become_subreaper() -> None:
    """Orphaned descendants (a forkserver, multiprocessing's resource tracker: their parent
    exits without waiting for them) are re-parented to this process instead of init, so
    ``_reap_orphans`` can wait for them and their CPU is counted too."""
    import ctypes

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        print("warning: not a subreaper; orphaned processes' CPU is not counted")


def _children_now() -> set[int]:
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry.name))
    return found


def _reap_orphans(keep: set[int], timeout: float = 60.0) -> None:
    """Wait for every child but ``keep`` (the sandboxes): the run's orphans, which exit once
    the processes they served are gone."""
    deadline = time.monotonic() + timeout
    while pending := _children_now() - keep:
        for pid in pending:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        time.sleep(0.1)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _postgres_database(admin_dsn: str) -> str:
    """A fresh database for the instance on ``admin_dsn``'s server; its libpq URL."""
    import psycopg2

    name = f"bench_noop_{os.getpid()}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    params = admin.get_dsn_parameters()
    admin.close()
    return f"postgresql://{params['user']}@{params['host']}:{params['port']}/{name}"


def _drop_postgres_database(admin_dsn: str, url: str) -> None:
    import psycopg2

    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    admin.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_tenants(n: int) -> str:
    """Tenants besides the measured one, as a service with many tenants has in its file."""
    return "".join(
        f"  t{i}:\n    mode: active\n"
        f'    svenn: {{base_url: "http://127.0.0.1:9/api/v1", api_key: "k{i}"}}\n'
        '    tripletex: {base_url: "http://127.0.0.1:9/v2", consumer_token: "c", '
        f'employee_token: "e{i}"}}\n'
        for i in range(n)
    )


def _tenants_file(path: Path, tripletex, svenn, others: int = 0) -> None:
    path.write_text(
        "tenants:\n"
        f"  {TENANT}:\n"
        "    mode: active\n"
        f'    svenn: {{base_url: "{svenn.base_url}", api_key: "{svenn.api_key}"}}\n'
        f'    tripletex: {{base_url: "{tripletex.base_url}", '
        f'consumer_token: "{tripletex.consumer_token}", '
        f'employee_token: "{tripletex.employee_token}"}}\n' + _other_tenants(others),
        encoding="utf-8",
    )


class CodeServer:
    """``dagster api grpc`` for the code location, as this process's child."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = _free_port()
        self.log = log.open("a", encoding="utf-8")  # the runs' event logs, kept for reading
        self.proc = subprocess.Popen(
            [
                str(BIN / "dagster"),
                *("api", "grpc", "-m", "sync_pipeline.definitions"),
                *("-h", "127.0.0.1", "-p", str(self.port), "--location-name", "sync_pipeline"),
                *("--log-level", "warning"),
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 180.0) -> None:
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                client.ping("")
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the code server did not start")
            time.sleep(0.1)

    def workspace_file(self, folder: Path) -> Path:
        path = folder / f"workspace-{self.port}.yaml"
        path.write_text(
            "load_from:\n  - grpc_server:\n"
            f"      host: 127.0.0.1\n      port: {self.port}\n"
            "      location_name: sync_pipeline\n",
            encoding="utf-8",
        )
        return path

    def stop(self) -> None:
        """Ctrl-C, then reap: its CPU (and its reaped run workers') lands in RUSAGE_CHILDREN."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


def _wait_run(home: str, run_id: str, timeout: float = 600.0):
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    instance = DagsterInstance.from_config(home)
    try:
        deadline = time.monotonic() + timeout
        while True:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                return run, instance.get_run_stats(run_id), _step_pids(instance, run_id)
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id} did not finish in {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        instance.dispose()


def _step_pids(instance, run_id: str) -> tuple[int, int]:
    from dagster import DagsterEventType

    starts = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    return len(starts), len({e.dagster_event.pid for e in starts})


def launched_run(env: dict[str, str], folder: Path, run_config: dict | None) -> dict:
    """One no-op incremental run through the launcher; the CPU of everything it made."""
    import uuid

    before = _children_cpu()
    started = time.perf_counter()
    server = CodeServer(env, folder / "code_server.log")
    ready = time.perf_counter()
    workspace = server.workspace_file(folder)
    run_id = str(uuid.uuid4())
    argv = [
        str(BIN / "dagster"),
        *("job", "launch", "-w", str(workspace), "-j", "sync_job", "--run-id", run_id),
        *("--tags", json.dumps({"dagster/partition": TENANT, "sync_pipeline/origin": "bench"})),
    ]
    if run_config:
        argv += ["--config-json", json.dumps(run_config)]
    # the submitter's CPU alone: the code server is still running, so none of its CPU is in
    # RUSAGE_CHILDREN yet
    submit_before = _children_cpu()
    submitted = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    submit_cpu = _children_cpu() - submit_before
    if submitted.returncode != 0:
        server.stop()
        raise SystemExit(f"dagster job launch failed:\n{submitted.stdout}\n{submitted.stderr}")
    launched = time.perf_counter()
    run, stats, (steps, pids) = _wait_run(env["DAGSTER_HOME"], run_id)
    finished = time.perf_counter()
    server.stop()
    _reap_orphans(KEEP)
    total = _children_cpu() - before - submit_cpu
    return {
        "status": run.status.value,
        "cpu_s": total,
        "submit_cpu_s": submit_cpu,
        "server_start_wall_s": ready - started,
        "launch_to_end_wall_s": finished - launched,
        "run_wall_s": (stats.end_time or 0) - (stats.launch_time or stats.start_time or 0),
        "run_start_to_end_s": (stats.end_time or 0) - (stats.start_time or 0),
        "steps": steps,
        "step_processes": pids,
        "held_s": finished - ready,
    }


def idle_server(env: dict[str, str], folder: Path, seconds: float) -> float:
    """The code server alone: start, stay up as long as a run did, stop."""
    before = _children_cpu()
    server = CodeServer(env, folder / "code_server.log")
    time.sleep(seconds)  # a benchmark's baseline, not synchronisation
    server.stop()
    _reap_orphans(KEEP)
    return _children_cpu() - before


def import_cost(env: dict[str, str]) -> dict:
    """What every fresh process of the run pays before any work: interpreter + code location."""
    out = {}
    for label, code in (
        ("python", "pass"),
        ("dagster", "import dagster"),
        ("definitions", "import sync_pipeline.definitions"),
    ):
        samples = []
        for _ in range(3):
            before = _children_cpu()
            subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
            samples.append(_children_cpu() - before)
        out[label] = statistics.median(samples)
    return out


def tenants_file_cost(folder: Path) -> None:
    """One read of the tenants file (each ``TenantsResource.get`` reads and validates all of it)
    with as many tenants as one instance would hold."""
    from sync_pipeline.tenants import load_tenants

    for n in (1, 500, 2000):
        path = folder / f"tenants-{n}.yaml"
        path.write_text("tenants:\n" + _other_tenants(n), encoding="utf-8")
        cpu = time.process_time()
        for _ in range(3):
            load_tenants(path)
        print(f"  {n:5} tenants: {(time.process_time() - cpu) / 3 * 1000:8.1f} ms CPU per read")


def profile_in_process(top: int) -> None:
    """cProfile of a no-op run in this process (the CLI's path), tenants-file reads counted."""
    from sync_pipeline.ops import runs

    profiler = cProfile.Profile()
    cpu = time.process_time()
    wall = time.perf_counter()
    profiler.enable()
    result = runs.execute("sync_job", TENANT, full=False, origin="bench")
    profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"\nin-process no-op run: success={result.success}, {cpu:.2f} CPU-s, {wall:.2f} s wall")
    stats = pstats.Stats(profiler)
    reads = {
        f"{Path(file).name}:{name}": calls[1]
        for (file, _line, name), calls in stats.stats.items()
        if name in {"load_tenants", "safe_load", "_load_yaml"} or "tenants_file" in name
    }
    print(f"tenants-file related calls: {reads}")
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(top)
    print(buffer.getvalue())
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(top)
    print(buffer.getvalue())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="measured runs per executor")
    p.add_argument("--profile", action="store_true", help="import cost and an in-process cProfile")
    p.add_argument("--top", type=int, default=35, help="rows of the profile")
    p.add_argument(
        "--other-tenants",
        type=int,
        default=0,
        help="tenants besides the measured one in the tenants file (not synced)",
    )
    p.add_argument(
        "--variant", action="append", choices=list(VARIANTS), help="only these executors"
    )
    p.add_argument(
        "--postgres",
        metavar="LIBPQ",
        help="the Dagster instance on PostgreSQL, as in production: a fresh database is made "
        "on this server (e.g. 'host=127.0.0.1 port=5432 dbname=test') and dropped afterwards; "
        "the server's own CPU is not counted (in production it is another machine)",
    )
    args = p.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not args.variant or k in args.variant}
    _become_subreaper()

    from sync_pipeline import cli, ops
    from sync_pipeline.ops import instance
    from sync_pipeline.sandbox.process import SandboxProcess

    folder = Path(tempfile.mkdtemp(prefix="bench_noop_"))
    os.environ.update(
        {
            "SYNC_TENANTS_FILE": str(folder / "tenants.yaml"),
            "SYNC_DUCKDB_PATH": str(folder / "pipeline.duckdb"),
            "SYNC_EXPORT_DIR": str(folder / "exports"),
            "DAGSTER_HOME": str(folder / "dagster_home"),
        }
    )
    database = _postgres_database(args.postgres) if args.postgres else None
    if database:
        os.environ[instance.POSTGRES_URL_ENV] = database
    home = instance.dagster_home()  # the instance file the CLI writes, with one change:
    # the run coordinator launches at once (the queue only decides *when*; its daemon's
    # polling is per instance, not per run)
    (home / "dagster.yaml").write_text(
        (instance.DAGSTER_YAML_POSTGRES if database else instance.DAGSTER_YAML)
        + "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        + "  class: DefaultRunCoordinator\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (
        SandboxProcess.start("tripletex", "--seed", "demo") as tripletex,
        SandboxProcess.start("svenn", "--seed", "demo") as svenn,
    ):
        _tenants_file(folder / "tenants.yaml", tripletex, svenn)
        KEEP.update(_children_now())
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}")
        print("setting up: a full sync, then an incremental one (in process)", flush=True)
        with contextlib.redirect_stdout(io.StringIO()):
            for argv in (["run", "--tenant", TENANT, "--full"], ["run", "--tenant", TENANT]):
                code = cli.main(argv)
                if code != ops.EXIT_OK:
                    raise SystemExit(f"setup run {argv} exited with {code}")
        if args.other_tenants:  # after the set-up runs: only the measured runs read them
            _tenants_file(folder / "tenants.yaml", tripletex, svenn, args.other_tenants)
            print(f"tenants file: {args.other_tenants} other tenants besides '{TENANT}'")
        writes = (tripletex.stats()["writes"], svenn.stats()["writes"])

        results: dict[str, list[dict]] = {label: [] for label in variants}
        for _ in range(args.runs):
            for label, config in variants.items():
                r = launched_run(env, folder, config)
                results[label].append(r)
                print(
                    f"  {label}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})}",
                    flush=True,
                )
        after = (tripletex.stats()["writes"], svenn.stats()["writes"])
        held = statistics.median(r["held_s"] for rs in results.values() for r in rs)
        startup = idle_server(env, folder, 0)
        idle = max(0.0, idle_server(env, folder, 30) - startup) / 30
        baseline = startup + idle * held
        print(
            f"\ncode server alone: {startup:.2f} CPU-s to start and stop, {idle * 60:.2f} CPU-s "
            f"per idle minute; {baseline:.2f} CPU-s for {held:.0f} s (subtracted below)"
        )
        print(
            f"writes during the measured runs: tripletex {after[0] - writes[0]}, svenn {after[1] - writes[1]}"
        )
        print(f"load average now {os.getloadavg()}")
        print("\nper no-op run (median):")
        for label, rs in results.items():
            cpu = statistics.median(r["cpu_s"] for r in rs)
            print(
                f"  {label:24} {cpu:6.2f} CPU-s with the code server, "
                f"{cpu - baseline:6.2f} CPU-s for the run itself; "
                f"run {statistics.median(r['run_start_to_end_s'] for r in rs):5.1f} s "
                f"(launch to end {statistics.median(r['launch_to_end_wall_s'] for r in rs):5.1f} s), "
                f"{rs[0]['steps']} steps in {rs[0]['step_processes']} processes; "
                f"submitting (CLI) {statistics.median(r['submit_cpu_s'] for r in rs):.2f} CPU-s"
            )
        if args.profile:
            print("\nCPU of a fresh process importing (median of 3):")
            for label, cpu in import_cost(env).items():
                print(f"  {label:12} {cpu:.2f} CPU-s")
            print("\nreading the tenants file:")
            tenants_file_cost(folder)
            profile_in_process(args.top)
    print(f"\n(data in {folder})")
    if database:
        _drop_postgres_database(args.postgres, database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
