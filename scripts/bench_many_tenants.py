"""Benchmark many tenants synced at once, on each state-store backend (issue 14). Rough.

    .venv/bin/python scripts/bench_many_tenants.py [--tenants 40] [--workers 1 2]
        [--stores duckdb ducklake] [--catalog 'host=127.0.0.1 dbname=postgres user=postgres']

T tenants (each its own company in both sandboxes, a small generated world), launched as a
schedule tick launches them: W runs at a time, each ``sync_job`` in a process of its own
with its own ephemeral Dagster instance (only the state store is shared). Per backend and W:
a first sync of every tenant, then a no-op incremental of every tenant. Prints tenants
synced per minute, CPU-seconds per tenant run (``wait4`` of each run process), runs that
waited for the store's lock, failed runs, an analyst's query latency while the runs write
(a read-only connection asking ``sync.errors`` once a second), and the machines 3,000
tenants every 15 minutes would need at that rate. On ``ducklake`` each W gets a fresh
catalog database (created on the server of ``--catalog``, dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_TENANTS, PERIOD_MIN = 3000, 15


def worker(tenants_file: str, tenant: str) -> int:
    """One tenant's ``sync_job`` in this process (the ``--worker`` mode)."""
    import dagster as dg

    from sync_pipeline import definitions
    from sync_pipeline.jobs import sync_job
    from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path
    from sync_pipeline.tenants import TenantsResource

    defs = dg.Definitions(
        assets=list(definitions.defs.assets or []),
        asset_checks=list(definitions.defs.asset_checks or []),
        jobs=[sync_job],
        resources={
            "duckdb": SyncDuckDB(database=duckdb_path()),
            "tenants": TenantsResource(tenants_file=tenants_file),
        },
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", [tenant])
    result = defs.resolve_job_def("sync_job").execute_in_process(
        partition_key=tenant, instance=instance, raise_on_error=False
    )
    return 0 if result.success else 1


def run_wave(tenants: list[str], workers: int, env: dict, tenants_file: Path) -> dict:
    """All tenants, ``workers`` processes at a time; wall time, CPU per run, failures."""
    pending, running, cpu, failed, lock_waits = list(tenants), {}, [], [], 0
    started = time.monotonic()
    while pending or running:
        while pending and len(running) < workers:
            tenant = pending.pop(0)
            log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed when its run ends
            proc = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(tenants_file), tenant],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
            running[proc.pid] = (tenant, log)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        tenant, log = running.pop(pid)
        cpu.append(usage.ru_utime + usage.ru_stime)
        log.seek(0)
        text = log.read()
        log.close()
        lock_waits += text.lower().count("could not set lock")
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(tenant)
    return {
        "wall_s": time.monotonic() - started,
        "cpu_s": statistics.mean(cpu),
        "failed": failed,
        "lock_waits": lock_waits,
    }


class Analyst(threading.Thread):
    """Asks ``sync.errors`` once a second through a read-only connection while runs write."""

    def __init__(self, store: str, database: str) -> None:
        super().__init__(daemon=True)
        self.store, self.database = store, database
        self.latencies: list[float] = []
        self.refused = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import duckdb

        from sync_pipeline.resources import backends

        lake = None
        if self.store == "ducklake":
            lake = backends.connect_lake(backends.LakeConfig.from_env(), read_only=True)
        while not self.stop.wait(1.0):
            t0 = time.monotonic()
            try:
                if lake is not None:
                    lake.execute("SELECT count(*) FROM sync.errors").fetchall()
                else:  # the one-file store: even a read-only open takes the file
                    with duckdb.connect(self.database, read_only=True) as conn:
                        conn.execute("SELECT count(*) FROM sync.errors").fetchall()
            except duckdb.Error:
                self.refused += 1
                continue
            self.latencies.append(time.monotonic() - t0)
        if lake is not None:
            lake.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stores", nargs="+", default=["duckdb", "ducklake"])
    parser.add_argument(
        "--scale", type=float, default=0.003, help="world size per tenant, a factor of 'large'"
    )
    parser.add_argument(
        "--catalog", default="host=127.0.0.1 port=5432 dbname=postgres user=postgres"
    )
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    import psycopg2
    import yaml

    from sync_pipeline.resources import backends
    from sync_pipeline.sandbox.process import SandboxProcess

    root = Path(tempfile.mkdtemp(prefix="bench_many_"))
    cores = os.cpu_count() or 1
    with (
        SandboxProcess.start("tripletex", "--seed", "empty") as tripletex,
        SandboxProcess.start("svenn", "--seed", "empty") as svenn,
    ):
        for store in args.stores:
            for workers in args.workers:
                tenants = {}
                for n in range(args.tenants):
                    world = {"seed": "world", "world_seed": n, "scale": args.scale}
                    tenants[f"t{n:04d}"] = {
                        "mode": "active",
                        "svenn": {"base_url": svenn.base_url, "api_key": svenn.new_company(**world)},
                        "tripletex": {
                            "base_url": tripletex.base_url,
                            "consumer_token": "bench",
                            "employee_token": tripletex.new_company(**world),
                        },
                    }  # fmt: skip
                place = root / f"{store}-{workers}"
                place.mkdir()
                tenants_file = place / "tenants.yaml"
                tenants_file.write_text(yaml.safe_dump({"tenants": tenants}))
                env = {
                    **os.environ,
                    "PYTHONPATH": str(REPO),
                    "SYNC_STORE": store,
                    "SYNC_DUCKDB_PATH": str(place / "state.duckdb"),
                    "SYNC_EXPORT_DIR": str(place / "exports"),
                }
                admin, database = None, None
                if store == "ducklake":
                    admin = psycopg2.connect(args.catalog)
                    admin.autocommit = True
                    database = f"bench_lake_{secrets.token_hex(3)}"
                    admin.cursor().execute(f'CREATE DATABASE "{database}"')
                    server = " ".join(p for p in args.catalog.split() if "dbname=" not in p)
                    env[backends.CATALOG_ENV] = f"{server} dbname={database}"
                    env[backends.DATA_PATH_ENV] = str(place / "lake")
                    os.environ.update({k: env[k] for k in (backends.STORE_ENV,
                                       backends.CATALOG_ENV, backends.DATA_PATH_ENV)})  # fmt: skip
                    with backends.open_store():  # create and migrate the lake once
                        pass
                analyst = Analyst(store, env["SYNC_DUCKDB_PATH"])
                analyst.start()
                first = run_wave(list(tenants), workers, env, tenants_file)
                noop = run_wave(list(tenants), workers, env, tenants_file)
                analyst.stop.set()
                analyst.join()
                if admin is not None:
                    backends.close_lakes()
                    admin.cursor().execute(f'DROP DATABASE "{database}" WITH (FORCE)')
                    admin.close()
                per_min = args.tenants / (noop["wall_s"] / 60)
                needed = TARGET_TENANTS / PERIOD_MIN  # tenants per minute
                machines = math.ceil(
                    needed / (per_min * max(cores / workers, 1))
                )  # W ≤ cores: linear
                lat = analyst.latencies
                print(json.dumps({
                    "store": store, "workers": workers, "tenants": args.tenants,
                    "first_sync": {"tenants_per_min": round(args.tenants / (first["wall_s"] / 60), 2),
                                   "cpu_s_per_run": round(first["cpu_s"], 2),
                                   "failed": len(first["failed"]), "lock_waits": first["lock_waits"]},
                    "noop_incremental": {"tenants_per_min": round(per_min, 2),
                                         "cpu_s_per_run": round(noop["cpu_s"], 2),
                                         "failed": len(noop["failed"]), "lock_waits": noop["lock_waits"]},
                    "analyst": {"queries": len(lat), "refused": analyst.refused,
                                "median_s": round(statistics.median(lat), 3) if lat else None,
                                "max_s": round(max(lat), 3) if lat else None},
                    "machines_for_3000_every_15_min": machines,
                }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
