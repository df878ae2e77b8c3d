"""Benchmark: plan a large company (default 50,000 customers / 9,000 projects / 2,000 employees).

Stages ``generate_world(seed, "large")`` as the extract step would, then materialises the
rule assets through Dagster twice: a first sync (no links: matching and creates) and a
steady-state run (every generated pair linked, its base = the Tripletex values: the
three-way merge over every link). Prints the wall time of each and the peak memory.

    .venv/bin/python scripts/bench_plan.py [--seed 2026] [--scale large]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from dagster import DagsterInstance, materialize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_pipeline.assets.rules import RULE_ASSETS
from sync_pipeline.assets.rules.canonical import base_json_sql, long_values_sql
from sync_pipeline.generator import generate_world
from sync_pipeline.generator.staged import stage_world
from sync_pipeline.model import ENTITIES
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource

TENANT = "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def link_all_pairs(db: SyncDuckDB, world) -> int:
    """Steady state: every generated pair linked, with the Tripletex values as its base."""
    rows = [(TENANT, e, s, t) for e, pairs in world.pairs.items() for s, t in pairs]
    pairs = pd.DataFrame(rows, columns=["tenant", "entity", "svenn_id", "tripletex_id"])  # noqa: F841
    bases = " UNION ALL ".join(
        f"SELECT '{e}' AS entity, id, json_group_object(field, {base_json_sql(value='value')}) AS base "
        f"FROM (SELECT '{e}' AS entity, * FROM ({long_values_sql('tripletex', e)})) GROUP BY id"
        for e in ENTITIES
    )
    with db.get_connection() as conn:
        conn.execute("DELETE FROM sync.links WHERE tenant = ?", [TENANT])
        conn.execute(
            f"""INSERT INTO sync.links BY NAME
            SELECT p.tenant, p.entity, p.svenn_id, p.tripletex_id, b.base->>'number' AS key,
                   'matched' AS origin, 'active' AS state, b.base, 1 AS tripletex_version,
                   1 AS svenn_version, now() AS linked_at, now() AS last_synced_at
            FROM pairs p JOIN ({bases}) b ON b.entity = p.entity AND b.id = p.tripletex_id""",
            {"tenant": TENANT},
        )
        return conn.execute("SELECT count(*) FROM sync.links").fetchone()[0]


def plan(db_path: str, tenants_file: Path, instance: DagsterInstance) -> tuple[float, dict]:
    started = time.perf_counter()
    result = materialize(
        RULE_ASSETS,
        partition_key=TENANT,
        instance=instance,
        resources={
            "duckdb": SyncDuckDB(database=db_path),
            "tenants": TenantsResource(tenants_file=str(tenants_file)),
        },
        raise_on_error=True,
    )
    seconds = time.perf_counter() - started
    steps = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        steps[mat.asset_key.to_user_string()] = mat.metadata["duration_s"].value
    print("  step durations (s):", {k: round(v, 2) for k, v in steps.items()})
    with SyncDuckDB(database=db_path).get_connection() as conn:
        counts = dict(
            conn.execute(
                "SELECT operation || '→' || target, count(*) FROM sync.plan WHERE run_id = ? "
                "GROUP BY ALL ORDER BY ALL",
                [result.run_id],
            ).fetchall()
        )
        counts["findings"] = conn.execute(
            "SELECT count(*) FROM sync.findings WHERE run_id = ?", [result.run_id]
        ).fetchone()[0]
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--scale", default="large")
    args = parser.parse_args()

    t = time.perf_counter()
    world = generate_world(args.seed, args.scale)
    sizes = {
        f"{side}_{k}": len(v)
        for side, d in (("svenn", world.svenn), ("tripletex", world.tripletex))
        for k, v in d.items()
    }
    print(
        f"generated world {args.scale} seed {args.seed} in {time.perf_counter() - t:.1f}s: {sizes}"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench_plan_"))
    db_path = str(tmp / "bench.duckdb")
    tenants_file = tmp / "tenants.yaml"
    tenants_file.write_text(
        yaml.safe_dump(
            {
                "tenants": {
                    TENANT: {
                        "mode": "active",
                        "svenn": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
                        "tripletex": {
                            "base_url": "http://127.0.0.1:9",
                            "consumer_token": "c",
                            "employee_token": "e",
                        },
                    }
                }
            }
        )
    )
    db = SyncDuckDB(database=db_path)
    t = time.perf_counter()
    with db.get_connection() as conn:
        stage_world(conn, TENANT, world)
    print(f"staged in {time.perf_counter() - t:.1f}s; peak RSS so far {peak_rss_mb():.0f} MB")

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", [TENANT])
    seconds, counts = plan(db_path, tenants_file, instance)
    print(f"first sync plan: {seconds:.2f}s  {counts}")
    links = link_all_pairs(db, world)
    seconds_steady, counts = plan(db_path, tenants_file, instance)
    print(f"steady-state plan over {links} links: {seconds_steady:.2f}s  {counts}")
    print(f"peak memory (RSS of this process, incl. world generation): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
