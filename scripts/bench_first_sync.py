"""Benchmark the first full sync of a large company (50,000 customers, 9,000 projects,
2,000 employees) through the real ``sync_job``, with Tripletex rate limited like the
real API (100 requests per 10 s).

    .venv/bin/python scripts/bench_first_sync.py [--scale large|FACTOR] [--world-seed N]

Starts both sandboxes itself (``--seed world``; Tripletex with ``--rate-limit 100/10``),
runs extract → rules → apply → error log once for one tenant, printing progress every
``--progress`` seconds, then reports the wall time and the requests each system saw
next to the minimum that company needs:

- Tripletex reads: 1 session + one page per 1,000 records and listing, a listing ending
  at its first short page (customers are listed twice: active and inactive);
- Tripletex writes: creates and updates through the ``/list`` batch endpoints
  (``--batch`` records per request, as the apply step sends them), employee updates one
  by one (there is no ``PUT /employee/list``); also shown with unlimited batches;
- Svenn: one page per 500 records and resource to read, one request per written record
  (Svenn has no batch endpoint), one to publish the error list.

At 100 requests per 10 s every Tripletex request costs at least 0.1 s, so the floor of
the wall time is ``minimum Tripletex requests / 10`` seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENANT = "bench"


def _tenants_file(path: Path, tripletex, svenn) -> None:
    path.write_text(
        "tenants:\n"
        f"  {TENANT}:\n"
        "    mode: active\n"
        f'    svenn: {{base_url: "{svenn.base_url}", api_key: "{svenn.api_key}"}}\n'
        f'    tripletex: {{base_url: "{tripletex.base_url}", '
        f'consumer_token: "{tripletex.consumer_token}", '
        f'employee_token: "{tripletex.employee_token}"}}\n',
        encoding="utf-8",
    )


def _progress(stop: threading.Event, tripletex, svenn, every: float, started: float) -> None:
    while not stop.wait(every):
        try:
            tx, sv = tripletex.stats(), svenn.stats()
        except Exception as exc:  # the report must not die with a progress line
            print(f"  [{time.perf_counter() - started:7.1f}s] stats unavailable: {exc}")
            continue
        print(
            f"  [{time.perf_counter() - started:7.1f}s] tripletex {sum(tx['requests'].values())} "
            f"requests ({tx['writes']} writes), svenn {sum(sv['requests'].values())} requests "
            f"({sv['writes']} writes)",
            flush=True,
        )


def _pages(n: int, size: int) -> int:
    """Pages of a listing that ends at its first short page."""
    return n // size + 1


def minimum_requests(db: Path, run_id: str, batch: int) -> dict:
    """What this company needs at least, from the run's staged records and plan."""
    import duckdb

    with duckdb.connect(str(db)) as conn:

        def count(sql: str, *params) -> int:
            return conn.execute(sql, list(params)).fetchall()[0][0]

        tx = {
            e: count(f"SELECT count(*) FROM staging.tripletex_{e}s")
            for e in ("employee", "project")
        }
        inactive = count("SELECT count(*) FROM staging.tripletex_customers WHERE NOT is_active")
        active = count("SELECT count(*) FROM staging.tripletex_customers") - inactive
        sv = {
            e: count(f"SELECT count(*) FROM staging.svenn_{e}s")
            for e in ("employee", "customer", "project")
        }
        planned = conn.execute(
            "SELECT entity, target, operation, count(*) FROM sync.plan "
            "WHERE run_id = ? AND apply GROUP BY ALL",
            [run_id],
        ).fetchall()
    reads_tx = 1 + _pages(tx["employee"], 1000) + _pages(active, 1000) + _pages(inactive, 1000)
    reads_tx += _pages(tx["project"], 1000)
    reads_sv = sum(math.ceil(max(n, 1) / 500) for n in sv.values())
    writes_tx = writes_tx_unbounded = writes_sv = 0
    for entity, target, operation, n in planned:
        if target == "tripletex":
            per_record = entity == "employee" and operation in ("update", "set_number")
            writes_tx += n if per_record else math.ceil(n / batch)
            writes_tx_unbounded += n if per_record else 1
        elif target == "svenn":
            writes_sv += n
    return {
        "tripletex_reads": reads_tx,
        "tripletex_writes": writes_tx,
        "tripletex_writes_unbounded_batches": writes_tx_unbounded,
        "svenn_reads": reads_sv,
        "svenn_writes": writes_sv + 1,  # + the error list publication
        "plan": {f"{e}.{t}.{o}": n for e, t, o, n in sorted(planned)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", default="large", help="generator scale (preset or factor)")
    p.add_argument("--world-seed", type=int, default=None)
    p.add_argument("--rate-limit", default="100/10", help="Tripletex sandbox limit (N/SECONDS)")
    p.add_argument("--progress", type=float, default=15.0, help="seconds between progress lines")
    args = p.parse_args()

    import dagster as dg

    from sync_pipeline.assets.apply.executor import PlanExecutor
    from sync_pipeline.jobs import sync_job
    from sync_pipeline.partitions import FULL_EXTRACT_TAG
    from sync_pipeline.resources.storage import SyncDuckDB
    from sync_pipeline.sandbox.process import SandboxProcess
    from sync_pipeline.tenants import TenantsResource

    batch = PlanExecutor.__init__.__kwdefaults__["batch_size"]
    world = ["--seed", "world", "--scale", str(args.scale)]
    if args.world_seed is not None:
        world += ["--world-seed", str(args.world_seed)]
    with tempfile.TemporaryDirectory(prefix="bench-first-sync-") as tmp:
        tmpdir = Path(tmp)
        os.environ["SYNC_EXPORT_DIR"] = str(tmpdir / "exports")
        started = time.perf_counter()
        with (
            SandboxProcess.start(
                "tripletex", *world, "--rate-limit", args.rate_limit, timeout=900
            ) as tripletex,
            SandboxProcess.start("svenn", *world, timeout=900) as svenn,
        ):
            print(f"sandboxes up in {time.perf_counter() - started:.1f}s (scale {args.scale})")
            tenants = tmpdir / "tenants.yaml"
            _tenants_file(tenants, tripletex, svenn)
            db = tmpdir / "bench.duckdb"
            from sync_pipeline import definitions

            defs = dg.Definitions(
                assets=list(definitions.defs.assets or []),
                asset_checks=list(definitions.defs.asset_checks or []),
                jobs=[sync_job],
                resources={
                    "duckdb": SyncDuckDB(database=str(db)),
                    "tenants": TenantsResource(tenants_file=str(tenants)),
                },
            )
            stop = threading.Event()
            run_started = time.perf_counter()
            watcher = threading.Thread(
                target=_progress,
                args=(stop, tripletex, svenn, args.progress, run_started),
                daemon=True,
            )
            watcher.start()
            with dg.DagsterInstance.ephemeral() as instance:
                instance.add_dynamic_partitions("tenants", [TENANT])
                result = defs.resolve_job_def("sync_job").execute_in_process(
                    partition_key=TENANT,
                    instance=instance,
                    tags={FULL_EXTRACT_TAG: "true"},
                    raise_on_error=False,
                )
                wall = time.perf_counter() - run_started
                stop.set()
                tx_stats, sv_stats = tripletex.stats(), svenn.stats()
                minimum = minimum_requests(db, result.run_id, batch)  # before run 2 adds records
                # G6: the next (incremental) run over the unchanged systems writes nothing
                second_started = time.perf_counter()
                second = defs.resolve_job_def("sync_job").execute_in_process(
                    partition_key=TENANT, instance=instance, raise_on_error=False
                )
                second_wall = time.perf_counter() - second_started
                tx_after, sv_after = tripletex.stats(), svenn.stats()
            steps = {
                ev.step_key: round(ev.event_specific_data.duration_ms / 1000, 1)
                for ev in result.all_events
                if ev.event_type_value == "STEP_SUCCESS"
            }
        import duckdb

        with duckdb.connect(str(db)) as conn:
            run = conn.execute(
                "SELECT outcome, requests, counts FROM sync.runs WHERE run_id = ?",
                [result.run_id],
            ).fetchall()

    tx_total = sum(tx_stats["requests"].values())
    sv_total = sum(sv_stats["requests"].values())
    tx_min = minimum["tripletex_reads"] + minimum["tripletex_writes"]
    sv_min = minimum["svenn_reads"] + minimum["svenn_writes"]
    print(f"\n== first full sync, scale {args.scale}, Tripletex limited to {args.rate_limit}")
    print(f"  success={result.success} outcome={run[0][0] if run else None} wall={wall:.1f}s")
    print(f"  steps (s): {json.dumps(steps)}")
    print(
        f"  tripletex requests {tx_total} (writes {tx_stats['writes']}) vs minimum {tx_min} "
        f"= reads {minimum['tripletex_reads']} + writes {minimum['tripletex_writes']} at batch "
        f"{batch} ({minimum['tripletex_writes_unbounded_batches']} with unlimited batches)"
    )
    print(
        f"  svenn requests {sv_total} (writes {sv_stats['writes']}) vs minimum {sv_min} "
        f"= reads {minimum['svenn_reads']} + writes {minimum['svenn_writes']}"
    )
    limit_n, limit_s = (float(x) for x in args.rate_limit.split("/"))
    print(f"  wall-time floor from the Tripletex budget: {tx_min * limit_s / limit_n:.1f}s")
    print(f"  plan: {json.dumps(minimum['plan'])}")
    if run:
        print(f"  sync.runs requests: {run[0][1]}")
    print(
        f"\n== second run (incremental, nothing changed): success={second.success} "
        f"wall={second_wall:.1f}s tripletex requests "
        f"{sum(tx_after['requests'].values()) - tx_total} (writes "
        f"{tx_after['writes'] - tx_stats['writes']}), svenn requests "
        f"{sum(sv_after['requests'].values()) - sv_total} (writes "
        f"{sv_after['writes'] - sv_stats['writes']})"
    )


if __name__ == "__main__":
    main()
