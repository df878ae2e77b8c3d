"""Benchmark the first full sync of a large company (50,000 customers, 9,000 projects,
2,000 employees) through the real ``sync_job``, with both sandboxes rate limited like the
real APIs (Tripletex 100 requests per 10 s, Svenn 600 per 60 s, both rolling windows).

    .venv/bin/python scripts/bench_first_sync.py [--scale large|FACTOR] [--world-seed N]

Starts both sandboxes itself (``--seed world``, each with its ``--rate-limit``), runs
extract → rules → apply → error log once for one tenant, printing progress every
``--progress`` seconds, then reports the wall time and the requests each system saw next
to the minimum that company needs with today's apply step:

- Tripletex reads: the session, ``>whoAmI``, and one page per 1,000 records and listing
  (the assignable project managers, employees, customers active and inactive, projects),
  a listing ending at its first short page;
- Tripletex writes: number assignments, creates and updates through the ``/list`` batch
  endpoints (the executor's ``batch_size``, 100, records per request, as the apply step
  sends them), employee
  updates one by one (there is no ``PUT /employee/list``); also shown with unlimited
  batches;
- Svenn reads: one page per 500 records and resource, tombstones included (the full
  extract lists with ``include_deleted=true``);
- Svenn writes: ``POST /api/v1/<resource>/bulk`` with up to 100 operations; a bulk may mix
  creates, updates (a complete is one) and deletes of one resource (svenn-api.md, "Bulk
  writes"), so the contract only forces resources apart: ceil(operations / 100) per
  resource; plus one ``PUT`` publishing the error list.

Requests are shown as a ratio to that minimum (goal ≤ 1.1×), with the wall-time floor
both budgets set. Then a second, incremental run over the unchanged systems (goal: zero
writes on either side). Peak memory is the pipeline's own process (this one: the job runs
in process); the sandboxes are separate processes, shown apart. The last block sums the
figures up, one a line, for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENANT = "bench"
#: The ratio to the minimum the issue accepts for each side's requests.
GOAL_RATIO = 1.1


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
    """Pages of a listing that ends at its first short page (Tripletex: offset paging)."""
    return n // size + 1


def _rate_limit(text: str) -> str:
    """Validate ``N/SECONDS`` or ``off`` as the sandbox will (its own parser)."""
    from sync_pipeline.sandbox.core import RateLimitSpec

    try:
        RateLimitSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def floor_seconds(requests: int, limit: str) -> float:
    """The least wall time ``requests`` take under a rolling window of N requests per S s.

    No window of S seconds may hold more than N requests, so request k (1-based) can start
    no earlier than floor((k - 1) / N) * S after the first: the last of R requests starts
    at (ceil(R / N) - 1) * S at the earliest, and R ≤ N costs nothing. Latency and the
    work between requests come on top, so this is a lower bound (``off``: 0).
    """
    from sync_pipeline.sandbox.core import RateLimitSpec

    spec = RateLimitSpec.parse(limit)
    if spec is None or requests <= 0:
        return 0.0
    return max(0, math.ceil(requests / spec.requests) - 1) * spec.seconds


def _rss_mb(kb: int) -> float:
    return kb / 1024


def _sandbox_peak_kb(sandbox) -> int | None:
    """The sandbox process's peak resident set (``VmHWM``), None where /proc has none."""
    try:
        status = Path(f"/proc/{sandbox.process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def minimum_requests(db: Path, run_id: str, batch: int) -> dict:
    """What this company needs at least, from the run's staged records and plan."""
    import duckdb

    from sync_pipeline.resources.svenn import BULK_MAX_OPERATIONS

    with duckdb.connect(str(db)) as conn:

        def count(sql: str, *params) -> int:
            return conn.execute(sql, list(params)).fetchall()[0][0]

        tx = {
            e: count(f"SELECT count(*) FROM staging.tripletex_{e}s")
            for e in ("employee", "project")
        }
        inactive = count("SELECT count(*) FROM staging.tripletex_customers WHERE NOT is_active")
        active = count("SELECT count(*) FROM staging.tripletex_customers") - inactive
        managers = count("SELECT count(*) FROM staging.tripletex_project_managers")
        sv = {  # tombstones included: the full extract stages them too
            e: count(f"SELECT count(*) FROM staging.svenn_{e}s")
            for e in ("employee", "customer", "project")
        }
        planned = conn.execute(
            "SELECT entity, target, operation, count(*) FROM sync.plan "
            "WHERE run_id = ? AND apply GROUP BY ALL",
            [run_id],
        ).fetchall()
    reads_tx = 2 + _pages(managers, 1000) + _pages(tx["employee"], 1000)  # session, >whoAmI
    reads_tx += _pages(active, 1000) + _pages(inactive, 1000) + _pages(tx["project"], 1000)
    # Svenn pages by cursor: the last full page already says next_cursor null
    reads_sv = sum(math.ceil(max(n, 1) / 500) for n in sv.values())
    writes_tx = writes_tx_unbounded = 0
    svenn_ops: dict[str, int] = {}  # per resource: one bulk may mix its operation kinds
    for entity, target, operation, n in planned:
        if target == "tripletex":
            per_record = entity == "employee" and operation in ("update", "set_number")
            writes_tx += n if per_record else math.ceil(n / batch)
            writes_tx_unbounded += n if per_record else 1
        elif target == "svenn":
            svenn_ops[entity] = svenn_ops.get(entity, 0) + n
    bulks_sv = sum(math.ceil(n / BULK_MAX_OPERATIONS) for n in svenn_ops.values())
    return {
        "tripletex_reads": reads_tx,
        "tripletex_writes": writes_tx,
        "tripletex_writes_unbounded_batches": writes_tx_unbounded,
        "svenn_reads": reads_sv,
        "svenn_bulks": bulks_sv,
        "svenn_operations": svenn_ops,
        "svenn_writes": bulks_sv + 1,  # + the error list publication
        "plan": {f"{e}.{t}.{o}": n for e, t, o, n in sorted(planned)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--scale",
        default="large",
        help="generator scale: a preset (demo, small, large) or a factor of large (e.g. 0.05)",
    )
    p.add_argument(
        "--world-seed", type=int, default=None, help="generator seed (default: the generator's)"
    )
    p.add_argument(
        "--tripletex-rate-limit",
        "--rate-limit",
        dest="tripletex_rate_limit",
        type=_rate_limit,
        default="100/10",
        help="Tripletex sandbox limit, N/SECONDS rolling or off (default: the real 100/10)",
    )
    p.add_argument(
        "--svenn-rate-limit",
        type=_rate_limit,
        default="600/60",
        help="Svenn sandbox limit, N/SECONDS rolling or off (default: the real 600/60)",
    )
    p.add_argument(
        "--progress", type=float, default=15.0, help="seconds between progress lines (15)"
    )
    args = p.parse_args()
    tx_limit, sv_limit = args.tripletex_rate_limit, args.svenn_rate_limit

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
                "tripletex", *world, "--rate-limit", tx_limit, timeout=900
            ) as tripletex,
            SandboxProcess.start("svenn", *world, "--rate-limit", sv_limit, timeout=900) as svenn,
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
                # ru_maxrss: KB on Linux; the peak of this process, which ran the whole job
                peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                tx_stats, sv_stats = tripletex.stats(), svenn.stats()
                minimum = minimum_requests(db, result.run_id, batch)  # before run 2 adds records
                # G6: the next (incremental) run over the unchanged systems writes nothing
                second_started = time.perf_counter()
                second = defs.resolve_job_def("sync_job").execute_in_process(
                    partition_key=TENANT, instance=instance, raise_on_error=False
                )
                second_wall = time.perf_counter() - second_started
                tx_after, sv_after = tripletex.stats(), svenn.stats()
            sandbox_peak_kb = {
                "tripletex": _sandbox_peak_kb(tripletex),
                "svenn": _sandbox_peak_kb(svenn),
            }
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
    peak_total_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    tx_total = sum(tx_stats["requests"].values())
    sv_total = sum(sv_stats["requests"].values())
    tx_min = minimum["tripletex_reads"] + minimum["tripletex_writes"]
    sv_min = minimum["svenn_reads"] + minimum["svenn_writes"]
    tx_ratio, sv_ratio = tx_total / max(tx_min, 1), sv_total / max(sv_min, 1)
    floor_tx, floor_sv = floor_seconds(tx_min, tx_limit), floor_seconds(sv_min, sv_limit)
    # both sides are called side by side (extract, apply phases), so the slower one bounds
    floor = max(floor_tx, floor_sv)
    tx2_requests = sum(tx_after["requests"].values()) - tx_total
    sv2_requests = sum(sv_after["requests"].values()) - sv_total
    # the sandboxes count writes differently: Tripletex per write request (a /list is one),
    # Svenn per record written (a bulk of N operations is N); zero is zero either way
    tx2_writes = tx_after["writes"] - tx_stats["writes"]
    sv2_writes = sv_after["writes"] - sv_stats["writes"]

    def verdict(ratio: float) -> str:
        return "ok" if ratio <= GOAL_RATIO else f"over the {GOAL_RATIO}× goal"

    def sandbox_mb(kind: str) -> str:
        kb = sandbox_peak_kb[kind]
        return f"{_rss_mb(kb):.0f} MB" if kb is not None else "n/a"

    print(
        f"\n== first full sync, scale {args.scale}, "
        f"Tripletex limited to {tx_limit}, Svenn to {sv_limit}"
    )
    print(f"  success={result.success} outcome={run[0][0] if run else None} wall={wall:.1f}s")
    print(f"  steps (s): {json.dumps(steps)}")
    print(
        f"  tripletex requests {tx_total} ({tx_stats['writes']} of them writes) vs minimum "
        f"{tx_min} = reads {minimum['tripletex_reads']} + writes "
        f"{minimum['tripletex_writes']} at batch {batch} "
        f"({minimum['tripletex_writes_unbounded_batches']} with unlimited batches): "
        f"{tx_ratio:.2f}× ({verdict(tx_ratio)})"
    )
    print(
        f"  svenn requests {sv_total} ({sv_stats['writes']} records written) vs minimum "
        f"{sv_min} = reads {minimum['svenn_reads']} + bulks {minimum['svenn_bulks']} "
        f"(operations per resource {json.dumps(minimum['svenn_operations'])}) + 1 error list: "
        f"{sv_ratio:.2f}× ({verdict(sv_ratio)})"
    )
    print("  (request counts include any attempt the sandbox refused with 429)")
    print(f"  tripletex requests by path: {json.dumps(tx_stats['requests'], sort_keys=True)}")
    print(f"  svenn requests by path: {json.dumps(sv_stats['requests'], sort_keys=True)}")
    print(
        f"  wall-time floor {floor:.1f}s = max(Tripletex {floor_tx:.1f}s, Svenn {floor_sv:.1f}s): "
        "(ceil(minimum / N) - 1) * S per side; at the requests made: Tripletex "
        f"{floor_seconds(tx_total, tx_limit):.1f}s, Svenn {floor_seconds(sv_total, sv_limit):.1f}s"
    )
    print(f"  plan: {json.dumps(minimum['plan'])}")
    if run:
        print(f"  sync.runs requests: {run[0][1]}")
    print(
        f"  peak RSS: pipeline process {_rss_mb(peak_kb):.0f} MB after the first run "
        f"({_rss_mb(peak_total_kb):.0f} MB after both); sandboxes (separate processes, "
        f"VmHWM over both runs): Tripletex {sandbox_mb('tripletex')}, Svenn {sandbox_mb('svenn')}"
    )
    print(
        f"\n== second run (incremental, nothing changed; goal: zero writes): "
        f"success={second.success} wall={second_wall:.1f}s tripletex requests {tx2_requests} "
        f"({tx2_writes} writes), svenn requests {sv2_requests} ({sv2_writes} records written)"
    )

    print(f"\n== summary (scale {args.scale}; Tripletex {tx_limit}, Svenn {sv_limit})")
    rows = [
        ("first sync wall", f"{wall:.1f} s (success={result.success})"),
        (
            "wall-time floor",
            f"{floor:.1f} s (Tripletex {floor_tx:.1f} s, Svenn {floor_sv:.1f} s; sides in parallel)",
        ),
        (
            "tripletex requests",
            f"{tx_total} vs minimum {tx_min} = {tx_ratio:.2f}× (goal ≤ {GOAL_RATIO}×)",
        ),
        (
            "svenn requests",
            f"{sv_total} vs minimum {sv_min} = {sv_ratio:.2f}× (goal ≤ {GOAL_RATIO}×)",
        ),
        (
            "second run",
            f"{second_wall:.1f} s, writes Tripletex {tx2_writes} / Svenn {sv2_writes} (goal 0)",
        ),
        (
            "peak RSS",
            f"pipeline {_rss_mb(peak_kb):.0f} MB; sandboxes Tripletex {sandbox_mb('tripletex')}, "
            f"Svenn {sandbox_mb('svenn')}",
        ),
    ]
    for label, value in rows:
        print(f"  {label:<19} {value}")


if __name__ == "__main__":
    main()
