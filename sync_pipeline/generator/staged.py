"""Generated worlds (``generate_world``) staged as the extract step would stage them.

The records go into the raw tables as JSON and staging is rebuilt with the extract
step's own SQL, so rule tests and the benchmark (``scripts/bench_plan.py``) see exactly
what a real extract of the sandbox would give — without a sandbox or HTTP.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pandas as pd

from sync_pipeline.assets.extract.tables import raw_insert_sql, staging_rebuild_sql
from sync_pipeline.generator import World
from sync_pipeline.model import ENTITIES, PLURAL, SIDES, raw_table, staging_table

_DELETED_AT = "2026-01-01T00:00:00Z"


def _svenn_json(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "deleted"}
    body.setdefault("updated_at", "2026-01-01T00:00:00Z")
    body["deleted_at"] = _DELETED_AT if record.get("deleted") else None
    body.setdefault("version", 1)
    return json.dumps(body, default=str)


def _tripletex_json(record: dict) -> str:
    return json.dumps({"version": 1, **record}, default=str)


def stage_world(conn: duckdb.DuckDBPyConnection, tenant: str, world: World) -> dict[str, int]:
    """Replace the tenant's raw and staging rows by the world's records; returns row counts."""
    counts = {}
    now = datetime.now(UTC)
    for side in SIDES:
        records = world.svenn if side == "svenn" else world.tripletex
        for entity in ENTITIES:
            rows = records[PLURAL[entity]]
            to_json = _svenn_json if side == "svenn" else _tripletex_json
            source = pd.DataFrame(  # noqa: F841 (read by DuckDB)
                {
                    "raw_json": [to_json(r) for r in rows],
                    **({"listing": "world", "page": 0} if side == "tripletex" else {}),
                }
            )
            conn.execute(f"DELETE FROM {raw_table(side, entity)} WHERE tenant = ?", [tenant])
            conn.execute(f"DELETE FROM {staging_table(side, entity)} WHERE tenant = ?", [tenant])
            if rows:
                conn.execute(
                    raw_insert_sql(side, entity, "source"), {"tenant": tenant, "extracted_at": now}
                )
                conn.execute(staging_rebuild_sql(side, entity), {"tenant": tenant})
            counts[f"{side}_{PLURAL[entity]}"] = len(rows)
    return counts
