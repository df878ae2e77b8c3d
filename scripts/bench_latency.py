"""Benchmark the latency of a change through webhooks (issue 15): edit → the other side.

    .venv/bin/python scripts/bench_latency.py [--edits 20] [--pace 6] [--down-after 8 --down-for 30]

Starts both sandboxes with the demo world and rate limits on (Tripletex ``100/10``, Svenn
``600/60``), the receiver on a loopback port, and a loop that plays the Dagster daemon: it
evaluates the webhook sensor every ``--tick`` seconds (the sensor's minimum interval) and
carries out each run it requests in this process, one at a time. After a first sync links
the two worlds and the tenant is subscribed, it edits a linked record every ``--pace``
seconds, alternating a Svenn customer's name and a Tripletex project's name, and measures
the time until the other side shows the new name (checked after each run). It prints the
median and the 95th percentile; the goal is median < 30 s, p95 < 60 s.

``--down-after N --down-for S`` stops the receiver after the Nth edit for S seconds: those
deliveries fail and are retried by the sandboxes (backoff 1, 2, 5, 10, 30 … s); no edit
may be lost. Not a test: figures depend on the machine. Measured 2026-11-30 on the
project's 2-core machine, idle but for the benchmark: 20 edits every 6 s, median 14.4 s, p95
20.7 s; with the receiver down for 30 s after the 8th edit, median 14.8 s, p95 50.8 s, no
edit lost. (On 2026-11-29, before runs executed in one process: median 42.8 s, p95 53.0 s.)
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENANT = "bench"
TX_SECRET = "bench-tripletex-secret"
SVENN_SECRET = "bench-svenn-secret-0123"


class Receiver:
    """The receiver under uvicorn in a thread; ``stop``/``start`` simulate an outage."""

    def __init__(self, tenants_file: Path, spool_file: Path):
        from sync_pipeline.webhooks.app import create_app

        self.app = create_app(tenants_file=tenants_file, spool_file=spool_file)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.sock = sock
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--pace", type=float, default=6.0, help="seconds between edits")
    parser.add_argument("--tick", type=float, default=5.0, help="sensor interval (s)")
    parser.add_argument("--down-after", type=int, default=0, help="stop the receiver after N edits")
    parser.add_argument("--down-for", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    import dagster as dg

    from sync_pipeline.sandbox.process import SandboxProcess

    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    env = {
        "SYNC_TENANTS_FILE": str(work / "tenants.yaml"),
        "SYNC_DUCKDB_PATH": str(work / "pipeline.duckdb"),
        "DAGSTER_HOME": str(work / "dagster_home"),
        "SYNC_WEBHOOK_SPOOL": str(work / "spool.sqlite"),
    }
    os.environ.update(env)
    (work / "dagster_home").mkdir()
    (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with (
        SandboxProcess.start("tripletex", "--seed", "demo", "--rate-limit", "100/10") as tx,
        SandboxProcess.start("svenn", "--seed", "demo", "--rate-limit", "600/60") as sv,
    ):
        (work / "tenants.yaml").write_text(
            "tenants:\n"
            f"  {TENANT}:\n"
            "    mode: active\n"
            f'    svenn: {{base_url: "{sv.base_url}", api_key: "{sv.api_key}"}}\n'
            f'    tripletex: {{base_url: "{tx.base_url}", '
            f'consumer_token: "{tx.consumer_token}", employee_token: "{tx.employee_token}"}}\n'
            f'    webhooks: {{tripletex_secret: "{TX_SECRET}", svenn_secret: "{SVENN_SECRET}"}}\n'
        )
        from sync_pipeline.definitions import defs
        from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path
        from sync_pipeline.sensors import brief_connection, ensure_tenant_partitions
        from sync_pipeline.tenants import load_tenants
        from sync_pipeline.webhooks import subscriptions
        from sync_pipeline.webhooks.sensor import evaluate

        instance = dg.DagsterInstance.get()
        ensure_tenant_partitions(instance, [TENANT])
        job = defs.resolve_job_def("sync_job")

        def run(tags: dict[str, str]) -> bool:
            return job.execute_in_process(
                instance=instance,
                partition_key=TENANT,
                tags=tags,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            ).success

        started = time.monotonic()
        assert run({}), "the first sync failed"
        print(f"first sync: {time.monotonic() - started:.1f} s", flush=True)
        tenant = load_tenants()[TENANT]
        svenn, tripletex = tenant.svenn_client(), tenant.tripletex_client()
        import duckdb

        conn = duckdb.connect(duckdb_path())
        customers = conn.execute(
            "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = ? AND entity ="
            " 'customer' AND state = 'active' ORDER BY svenn_id",
            [TENANT],
        ).fetchall()
        projects = conn.execute(
            "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = ? AND entity ="
            " 'project' AND state = 'active' ORDER BY tripletex_id",
            [TENANT],
        ).fetchall()
        conn.close()

        receiver = Receiver(work / "tenants.yaml", work / "spool.sqlite")
        receiver.start()
        for change in subscriptions.ensure(tenant, receiver.url):
            print(f"  {change}", flush=True)

        pending: dict[int, tuple[str, int, str, float]] = {}  # edit → (side, id, name, t0)
        latencies: list[float] = []
        lock = threading.Lock()
        runs = {"count": 0}

        def visible(side: str, record_id: int, name: str) -> bool:
            if side == "tripletex":
                return tripletex.get(f"/customer/{record_id}", fields="name")["name"] == name
            return svenn.get("projects", record_id)["name"] == name

        def edit_at_pace() -> None:
            down_until = None
            for i in range(args.edits):
                name = f"Bench {i} {datetime.now(UTC):%H%M%S}"
                with lock:
                    if i % 2 == 0:
                        svenn_id, tripletex_id = customers[i // 2 % len(customers)]
                        svenn.update("customers", svenn_id, {"name": name})
                        pending[i] = ("tripletex", tripletex_id, name, time.monotonic())
                    else:
                        svenn_id, tripletex_id = projects[i // 2 % len(projects)]
                        current = tripletex.get(f"/project/{tripletex_id}", fields="id,version")
                        tripletex.put(
                            f"/project/{tripletex_id}",
                            {"id": tripletex_id, "version": current["version"], "name": name},
                        )
                        pending[i] = ("svenn", svenn_id, name, time.monotonic())
                if args.down_after and i + 1 == args.down_after:
                    receiver.stop()
                    down_until = time.monotonic() + args.down_for
                    print(f"receiver down for {args.down_for:.0f} s", flush=True)
                if down_until is not None and time.monotonic() >= down_until:
                    receiver.start()
                    down_until = None
                    print("receiver up again", flush=True)
                time.sleep(args.pace)
            if down_until is not None:
                time.sleep(max(0.0, down_until - time.monotonic()))
                receiver.start()
                print("receiver up again", flush=True)
            edits_done.set()

        edits_done = threading.Event()
        editor = threading.Thread(target=edit_at_pace, daemon=True)
        editor.start()
        # The daemon's part on the main thread (Dagster runs in-process runs there).
        store = SyncDuckDB(database=duckdb_path())
        deadline = None
        while True:
            with brief_connection(store) as c:
                tick = evaluate(c, instance) if c is not None else None
            for request in tick.requests if tick else ():
                ok = run(request.tags)
                runs["count"] += 1
                now = time.monotonic()
                with lock:
                    for edit, (side, rid, name, t0) in list(pending.items()):
                        if visible(side, rid, name):
                            latencies.append(now - t0)
                            del pending[edit]
                print(f"  run {runs['count']} ({'ok' if ok else 'failed'})", flush=True)
            if edits_done.is_set():
                deadline = deadline or time.monotonic() + args.timeout
                with lock:
                    if not pending or time.monotonic() > deadline:
                        break
            time.sleep(args.tick)
        receiver.stop()

    lost = len(pending)
    print(f"edits: {args.edits}, runs: {runs['count']}, not seen within the timeout: {lost}")
    if latencies:
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, math_ceil(0.95 * len(ordered)) - 1)]
        print(
            f"latency: median {statistics.median(ordered):.1f} s, p95 {p95:.1f} s "
            f"(goal: median < 30 s, p95 < 60 s)"
        )
    return 0 if not lost else 1


def math_ceil(x: float) -> int:
    import math

    return math.ceil(x)


if __name__ == "__main__":
    sys.exit(main())
