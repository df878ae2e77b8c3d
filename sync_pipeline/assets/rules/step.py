"""What every rule asset shares: its declaration, its tenant-scoped writes, its metadata.

A rule step is a Dagster asset of group ``rules`` that reads DuckDB tables and
replaces only its own tenant's rows in its output tables, inside one transaction,
so a failed step leaves the previous result intact.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from sync_pipeline.markdown_text import md_table
from sync_pipeline.model import ENTITIES, SIDES, staging_table
from sync_pipeline.partitions import tenant_partitions

GROUP = "rules"
OWNERS = ["team:sync"]
KINDS = {"duckdb", "python"}

#: The staged snapshots every rule ultimately reads (written by the extract group).
STAGING_KEYS = [
    AssetKey(staging_table(side, entity).split(".")) for side in SIDES for entity in ENTITIES
]


def rules_key(name: str) -> AssetKey:
    return AssetKey(["rules", name])


def rule_asset(
    name: str, deps: Sequence[AssetKey], description: str
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a ``rules/<name>`` asset, partitioned by tenant."""
    return asset(
        key=rules_key(name),
        deps=list(deps),
        group_name=GROUP,
        description=description,
        owners=OWNERS,
        kinds=KINDS,
        partitions_def=tenant_partitions,
        required_resource_keys={"duckdb", "tenants"},
    )


def replace_rows(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    tenant: str,
    select_sql: str,
    params: Mapping[str, Any],
    where: str = "",
) -> int:
    """Replace the tenant's rows of ``table`` (optionally narrowed by ``where``) by a SELECT.

    The caller owns the transaction; ``select_sql`` must yield the table's columns in order
    and may use the named ``params`` (``$tenant``…).
    """
    conn.execute(f"DELETE FROM {table} WHERE tenant = ? {where}", [tenant])
    conn.execute(f"INSERT INTO {table} {select_sql}", bind(select_sql, params))
    return count_rows(conn, table, tenant, where)


#: The per-run frames analysts query (``sync.eligibility_checks``, ``sync.matches``) keep
#: each tenant's newest runs only: a frame is a full picture of a run, so keeping every
#: run would grow by the tenant's size every 15 minutes.
FRAME_RUNS_KEPT = 20


def prune_frame(
    conn: duckdb.DuckDBPyConnection, table: str, tenant: str, stamp: str, keep: int | None = None
) -> None:
    """Delete the tenant's rows of ``table`` but those of its newest ``keep`` runs (by the
    newest ``stamp`` of each run)."""
    conn.execute(
        f"DELETE FROM {table} WHERE tenant = $tenant AND run_id NOT IN ("
        f"SELECT run_id FROM {table} WHERE tenant = $tenant GROUP BY run_id "
        f"ORDER BY max({stamp}) DESC, run_id LIMIT $keep)",
        {"tenant": tenant, "keep": FRAME_RUNS_KEPT if keep is None else keep},
    )


def bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters ``sql`` uses (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def count_rows(conn: duckdb.DuckDBPyConnection, table: str, tenant: str, where: str = "") -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant = ? {where}", [tenant])
    return int(row.fetchone()[0])


def in_transaction(conn: duckdb.DuckDBPyConnection, work: Callable[[], Any]) -> Any:
    conn.execute("BEGIN TRANSACTION")
    try:
        result = work()
    except Exception:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def preview(conn: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> MetadataValue:
    """A small markdown table of a query's first rows, for the Dagster UI (cells escaped:
    records' text is data, not markup)."""
    cur = conn.execute(f"SELECT * FROM ({sql}) LIMIT 20", bind(sql, params))
    names = [d[0] for d in cur.description]
    return MetadataValue.md(md_table(names, cur.fetchall(), empty="_no rows_"))


def result(
    context: AssetExecutionContext,
    started: float,
    rows: dict[str, int],
    preview_md: MetadataValue,
) -> MaterializeResult:
    """The metadata every rule asset reports: row counts, duration and a preview."""
    context.log.info("%s: %s", context.asset_key.to_user_string(), rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(rows.values()),
            **{f"rows_{name}": MetadataValue.int(n) for name, n in rows.items()},
            "requests_made": 0,
            "duration_s": MetadataValue.float(round(time.perf_counter() - started, 3)),
            "preview": preview_md,
        }
    )
