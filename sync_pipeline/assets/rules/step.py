"""What every rule asset shares: one declaration (``rule_step``), tenant-scoped writes that
name their columns, and the metadata every step reports.

A rule step is a Dagster asset of group ``rules`` that reads DuckDB tables and replaces
only its own tenant's rows in its output tables, inside one transaction, so a failed step
leaves the previous result intact. A step module declares only what differs (its
parameters, scratch tables, writes and preview); the body is written once, here. All rule
steps are assets of the one ``rules`` multi-asset (``assets.py``): one Dagster step for the
seven, since each step of a run costs Dagster's own bookkeeping (events, partition and
version lookups), more than most rules' SQL (issue 13).
"""

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
)

from sync_pipeline.model import ENTITIES, SIDES, staging_table
from sync_pipeline.resources.state import preview, transaction
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantConfig

GROUP = "rules"
OWNERS = ["team:sync"]
KINDS = {"duckdb", "python"}

#: The staged snapshots every rule ultimately reads (written by the extract group).
STAGING_KEYS = [
    AssetKey(staging_table(side, entity).split(".")) for side in SIDES for entity in ENTITIES
]

#: The columns of every table a rule step writes, in the order its SQL builders yield them:
#: every ``INSERT … SELECT`` names them, so no statement depends on the DDL's column order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "rules.eligibility": (
        "tenant", "entity", "side", "id", "key", "label", "linked", "excluded", "create_blocked",
    ),
    "rules.pairs": ("tenant", "entity", "svenn_id", "tripletex_id", "key", "kind", "origin", "via"),
    "rules.numbers": ("tenant", "entity", "side", "id", "number"),
    "rules.decisions": (
        "tenant", "entity", "svenn_id", "tripletex_id", "field", "base_value", "svenn_value",
        "tripletex_value", "merged", "write_to", "blocked_by", "conflict_winner",
    ),
    "rules.deletions": (
        "tenant", "entity", "svenn_id", "tripletex_id", "deleted_on", "rule_id", "held",
    ),
    "rules.operations": (
        "tenant", "step", "entity", "target", "operation", "svenn_id", "tripletex_id", "key",
        "label", "payload", "fields", "rule_ids", "reason", "expected_version", "base_after",
        "held_reason",
    ),
    "rules.findings": (
        "tenant", "step", "entity", "side", "svenn_id", "tripletex_id", "record_label", "code",
        "details",
    ),
    "rules.conflicts": (
        "tenant", "entity", "svenn_id", "tripletex_id", "field", "base_value", "svenn_value",
        "tripletex_value", "winner", "svenn_modified_at", "tripletex_modified_at",
    ),
    "sync.eligibility_checks": (
        "tenant", "run_id", "entity", "side", "id", "key", "label", "linked", "rule_id", "code",
        "effect", "checked_at",
    ),
    "sync.plan": (
        "tenant", "run_id", "seq", "entity", "target", "operation", "svenn_id", "tripletex_id",
        "key", "label", "payload", "fields", "rule_ids", "reason", "expected_version",
        "base_after", "apply", "held_reason", "planned_at",
    ),
    "sync.findings": (
        "tenant", "run_id", "entity", "side", "svenn_id", "tripletex_id", "record_label", "code",
        "severity", "rule_id", "message", "details",
    ),
    "sync.conflicts": (
        "tenant", "run_id", "entity", "svenn_id", "tripletex_id", "field", "base_value",
        "svenn_value", "tripletex_value", "winner", "svenn_modified_at", "tripletex_modified_at",
        "detected_at",
    ),
    "sync.matches": (
        "tenant", "run_id", "entity", "svenn_id", "tripletex_id", "key", "via", "kind", "origin",
        "matched_at",
    ),
}  # fmt: skip


def rules_key(name: str) -> AssetKey:
    return AssetKey(["rules", name])


def bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters ``sql`` uses (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def insert_rows(
    conn: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Mapping[str, Any]
) -> int:
    """``INSERT INTO table (its COLUMNS) select_sql``; returns the rows inserted."""
    columns = ", ".join(COLUMNS[table])
    cur = conn.execute(f"INSERT INTO {table} ({columns}) {select_sql}", bind(select_sql, params))
    return int(cur.fetchone()[0])


def replace_rows(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    tenant: str,
    select_sql: str,
    params: Mapping[str, Any],
    where: str = "",
) -> int:
    """Replace the tenant's rows of ``table`` (optionally narrowed by ``where``) by a SELECT.

    The caller owns the transaction; ``select_sql`` yields ``COLUMNS[table]`` in order and
    may use the named ``params`` (``$tenant``…).
    """
    conn.execute(f"DELETE FROM {table} WHERE tenant = ? {where}", [tenant])
    insert_rows(conn, table, select_sql, params)
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


def count_rows(conn: duckdb.DuckDBPyConnection, table: str, tenant: str, where: str = "") -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant = ? {where}", [tenant])
    return int(row.fetchone()[0])


def preview_md(conn: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> Any:
    """The state store's preview of ``sql`` as UI metadata (named ``params``, bound)."""
    return MetadataValue.md(preview(conn, sql, bind(sql, params)))


def result(
    context: AssetExecutionContext,
    key: AssetKey,
    started: float,
    rows: dict[str, int],
    preview_md: MetadataValue,
) -> MaterializeResult:
    """The metadata every rule asset reports: row counts, duration and a preview."""
    context.log.info("%s: %s", key.to_user_string(), rows)
    return MaterializeResult(
        asset_key=key,
        metadata={
            "dagster/row_count": sum(rows.values()),
            **{f"rows_{name}": MetadataValue.int(n) for name, n in rows.items()},
            "requests_made": 0,
            "duration_s": MetadataValue.float(round(time.perf_counter() - started, 3)),
            "preview": preview_md,
        },
    )


@dataclass(frozen=True)
class StepInput:
    """What a step's parameters are computed from."""

    tenant: str
    run_id: str
    config: TenantConfig
    conn: duckdb.DuckDBPyConnection


Params = dict[str, Any]


@dataclass(frozen=True)
class RuleStep:
    """One rule asset: its spec and how it runs (see ``rule_step``)."""

    spec: AssetSpec
    write: Callable[[duckdb.DuckDBPyConnection, Params], dict[str, int]]
    preview_sql: str
    params: Callable[[StepInput], Params] | None = None
    scratch: Sequence[tuple[str, Callable[[], str]]] = ()

    def run(
        self,
        context: AssetExecutionContext,
        duckdb: SyncDuckDB,
        tenant: str,
        config: TenantConfig,
    ) -> MaterializeResult:
        """The step's ``params`` (besides ``tenant`` and ``run_id``) from the tenant's config;
        the ``scratch`` temp tables in order; ``write`` in one transaction, returning row
        counts per output; the scratch tables dropped; a preview of ``preview_sql``."""
        started = time.perf_counter()
        run_id = context.run.run_id
        with duckdb.get_connection() as conn:
            values: Params = {"tenant": tenant, "run_id": run_id}
            if self.params is not None:
                values.update(self.params(StepInput(tenant, run_id, config, conn)))
            try:
                for table, build in self.scratch:
                    sql = build()
                    conn.execute(
                        f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", bind(sql, values)
                    )
                with transaction(conn):
                    rows = self.write(conn, values)
            finally:
                for table, _ in self.scratch:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            md = preview_md(conn, self.preview_sql, values)
        return result(context, self.spec.key, started, rows, md)


def rule_step(
    name: str,
    deps: Sequence[AssetKey],
    description: str,
    *,
    write: Callable[[duckdb.DuckDBPyConnection, Params], dict[str, int]],
    preview_sql: str,
    params: Callable[[StepInput], Params] | None = None,
    scratch: Sequence[tuple[str, Callable[[], str]]] = (),
) -> RuleStep:
    """Declare the ``rules/<name>`` asset, partitioned by tenant (as part of ``rules``)."""
    spec = AssetSpec(
        key=rules_key(name),
        deps=list(deps),
        group_name=GROUP,
        description=description,
        owners=OWNERS,
        kinds=KINDS,
    )
    return RuleStep(spec, write, preview_sql, params, scratch)
