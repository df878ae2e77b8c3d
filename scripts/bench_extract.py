"""Benchmark the extraction of a large company (50,000 customers, 9,000 projects, 2,000
employees) from both sandboxes, through the real Dagster assets.

    .venv/bin/python scripts/bench_extract.py [--scale large] [--skip-rate-limited]

Starts the sandboxes itself (``--seed world --scale large``) on free loopback ports and
runs each scenario in a fresh child process, so every peak-memory figure is that run's
own (``ru_maxrss``; ``--tracemalloc`` adds Python's allocation peak, at some speed cost):

1. full extract, rate limits off;
2. incremental extract right after, nothing changed (every Tripletex page answers 304);
3. full extract with the Tripletex sandbox limiting to 100 requests per 10 s (the real
   API's budget), skipped with ``--skip-rate-limited``.

It checks that the Tripletex side needs no more requests than the pages require:
1 session + 1 ``>whoAmI`` and the ``assignableProjectManagers`` listing (P10, asked on
full extracts) + ceil((n + 1) / 1000) per listing (a listing ends at its first short
page), with customers listed twice (active and inactive).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENANT = "bench"


def _child(args: argparse.Namespace) -> None:
    """One scenario in this process: extract (twice with --incremental-after) and report."""
    import dagster as dg

    from sync_pipeline.assets.extract.assets import extract
    from sync_pipeline.partitions import FULL_EXTRACT_TAG
    from sync_pipeline.resources.storage import SyncDuckDB
    from sync_pipeline.tenants import TenantsResource

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.tracemalloc:
        tracemalloc.start()
    duckdb = SyncDuckDB(database=args.db)
    tenants = TenantsResource(tenants_file=args.tenants)
    reports = []
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenants", [TENANT])
        runs = [("full", True)] + ([("incremental", False)] if args.incremental_after else [])
        for label, full in runs:
            if args.tracemalloc:
                tracemalloc.reset_peak()
            started = time.perf_counter()
            result = dg.materialize(
                [extract],
                partition_key=TENANT,
                instance=instance,
                resources={"duckdb": duckdb, "tenants": tenants},
                tags={FULL_EXTRACT_TAG: "true"} if full else None,
                raise_on_error=False,
            )
            wall = time.perf_counter() - started
            per_asset = {
                ev.asset_key.path[-1]: {
                    k: v.value
                    for k, v in ev.materialization.metadata.items()
                    if k
                    in (
                        "dagster/row_count",
                        "requests",
                        "pages_fetched",
                        "pages_not_modified",
                        "mode",
                        "duration_s",
                    )
                }
                for ev in result.get_asset_materialization_events()
                if ev.asset_key.path[0] == "raw"
            }
            reports.append(
                {
                    "run": label,
                    "success": result.success,
                    "wall_s": round(wall, 2),
                    "assets": per_asset,
                    "tracemalloc_peak_mb": (
                        round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
                        if args.tracemalloc
                        else None
                    ),
                }
            )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "runs": reports,
                "baseline_rss_mb": baseline_rss // 1024,
                "peak_rss_mb": peak_rss // 1024,
            }
        )
    )


def _tenants_file(path: Path, tripletex: Any, svenn: Any) -> None:
    path.write_text(
        "tenants:\n"
        f"  {TENANT}:\n"
        "    mode: review\n"
        f'    svenn: {{base_url: "{svenn.base_url}", api_key: "{svenn.api_key}"}}\n'
        f'    tripletex: {{base_url: "{tripletex.base_url}", '
        f'consumer_token: "{tripletex.consumer_token}", '
        f'employee_token: "{tripletex.employee_token}"}}\n',
        encoding="utf-8",
    )


def _run_child(tenants: Path, db: Path, *, incremental_after: bool, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--tenants", str(tenants), "--db", str(db)]
    if incremental_after:
        cmd.append("--incremental-after")
    if trace:
        cmd.append("--tracemalloc")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"benchmark child failed ({out.returncode})")
    return json.loads(lines[-1])


def _expected_tripletex_requests(
    counts: dict[str, int], inactive: int, managers: int, page: int = 1000
) -> int:
    def pages(n: int) -> int:
        return math.floor(n / page) + 1  # the last page is the first short one

    active = counts["tripletex_customers"] - inactive
    return (
        2  # session + >whoAmI
        + pages(managers)
        + pages(counts["tripletex_employees"])
        + pages(active)
        + pages(inactive)
        + pages(counts["tripletex_projects"])
    )


def _print_report(title: str, report: dict, expected_tx: int | None) -> None:
    print(f"\n== {title}")
    for run in report["runs"]:
        assets = run["assets"]
        tx = sum(v["requests"] for k, v in assets.items() if k.startswith("tripletex"))
        sv = sum(v["requests"] for k, v in assets.items() if k.startswith("svenn"))
        rows = {k: v["dagster/row_count"] for k, v in assets.items()}
        unchanged = sum(v.get("pages_not_modified", 0) for v in assets.values())
        print(
            f"  {run['run']:<12} success={run['success']} wall={run['wall_s']:.2f}s "
            f"requests: tripletex={tx} svenn={sv} (304 pages: {unchanged})"
            + (
                f" tracemalloc peak={run['tracemalloc_peak_mb']} MB"
                if run["tracemalloc_peak_mb"] is not None
                else ""
            )
        )
        print(f"  {'':<12} rows: {rows}")
        seconds = {k: v["duration_s"] for k, v in assets.items()}
        print(f"  {'':<12} seconds per entity (fetch + write): {seconds}")
        if expected_tx is not None and run["run"] == "full":
            verdict = "OK" if tx <= expected_tx else "TOO MANY"
            print(f"  {'':<12} tripletex requests {tx} vs pages required {expected_tx}: {verdict}")
    print(
        f"  peak RSS {report['peak_rss_mb']} MB (process baseline before the run "
        f"{report['baseline_rss_mb']} MB)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", default="large", help="generator scale (preset or factor)")
    p.add_argument("--world-seed", type=int, default=None)
    p.add_argument("--skip-rate-limited", action="store_true")
    p.add_argument("--tracemalloc", action="store_true", help="also report Python's peak")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--incremental-after", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tenants", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return

    from sync_pipeline.sandbox.process import SandboxProcess

    world = ["--seed", "world", "--scale", str(args.scale)]
    if args.world_seed is not None:
        world += ["--world-seed", str(args.world_seed)]
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        tmpdir = Path(tmp)
        started = time.perf_counter()
        with (
            SandboxProcess.start("tripletex", *world, timeout=600) as tripletex,
            SandboxProcess.start("svenn", *world, timeout=600) as svenn,
        ):
            print(f"sandboxes up in {time.perf_counter() - started:.1f}s (scale {args.scale})")
            tenants = tmpdir / "tenants.yaml"
            _tenants_file(tenants, tripletex, svenn)
            report = _run_child(
                tenants,
                tmpdir / "a" / "bench.duckdb",
                incremental_after=True,
                trace=args.tracemalloc,
            )
            counts = {k: v["dagster/row_count"] for k, v in report["runs"][0]["assets"].items()}
            inactive, managers = _inactive_customers_and_managers(tmpdir / "a" / "bench.duckdb")
            expected = _expected_tripletex_requests(counts, inactive, managers)
            _print_report("rate limits off", report, expected)

        if args.skip_rate_limited:
            return
        with (
            SandboxProcess.start(
                "tripletex", *world, "--rate-limit", "100/10", timeout=600
            ) as tripletex,
            SandboxProcess.start("svenn", *world, timeout=600) as svenn,
        ):
            tenants = tmpdir / "tenants-limited.yaml"
            _tenants_file(tenants, tripletex, svenn)
            report = _run_child(
                tenants,
                tmpdir / "b" / "bench.duckdb",
                incremental_after=False,
                trace=args.tracemalloc,
            )
            _print_report("Tripletex sandbox at 100 requests / 10 s", report, expected)


def _inactive_customers_and_managers(db: Path) -> tuple[int, int]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM staging.tripletex_customers WHERE NOT is_active), "
            "(SELECT count(*) FROM staging.tripletex_project_managers)"
        ).fetchone()


if __name__ == "__main__":
    main()
