"""One entity's snapshot of one system: choosing the mode, writing it atomically, recording it.

The raw rows, the staging rows and the ``sync.extracts`` row of an extract are written in
ONE DuckDB transaction, after the whole listing has been fetched. An extract that fails
part-way writes only an incomplete ``sync.extracts`` row, so the rules keep working on the
previous complete snapshot and never mistake missing records for deletions (G7).

A targeted read (a run started by webhook events, mode ``targeted``) is an incremental
page set keyed by id: it replaces the raw rows of the ids it asked for and keeps every
other row, so the snapshot stays the previous complete one plus what the events named.
Only a record it asked for and did not find leaves staging; a record absent from it is
untouched, never taken for deleted. It keeps the previous watermark (its pages' digests),
so the next listing still re-reads every page that changed since the last one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from sync_pipeline.assets.extract.tables import raw_insert_sql, staging_rebuild_sql
from sync_pipeline.model import Entity, Side, raw_table, staging_table
from sync_pipeline.resources.state import staged_rows, transaction

#: ``details.found_by`` of a finding the extract records (the plan keeps it for the run).
EXTRACT_FINDING = "extract"

#: A full extract is forced when the last one is older than this, whatever the schedule.
FULL_EXTRACT_MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class PreviousExtract:
    """The newest complete extract of one (tenant, system, entity), if any."""

    mode: str
    finished_at: datetime
    row_count: int
    watermark: dict[str, Any] | None
    last_full_at: datetime | None
    snapshot_rows: int


def previous_extract(
    conn: duckdb.DuckDBPyConnection, tenant: str, side: Side, entity: Entity
) -> PreviousExtract | None:
    row = conn.execute(
        """
        SELECT mode, finished_at, row_count, watermark,
               (SELECT max(finished_at) FROM sync.extracts
                 WHERE tenant = $tenant AND system = $side AND entity = $entity
                   AND complete AND mode = 'full')
        FROM sync.extracts
        WHERE tenant = $tenant AND system = $side AND entity = $entity AND complete
        ORDER BY finished_at DESC LIMIT 1
        """,
        {"tenant": tenant, "side": side, "entity": entity},
    ).fetchone()
    if row is None:
        return None
    (snapshot_rows,) = conn.execute(
        f"SELECT count(*) FROM {staging_table(side, entity)} WHERE tenant = ?", [tenant]
    ).fetchone()
    watermark = json.loads(row[3]) if row[3] else None
    return PreviousExtract(row[0], row[1], row[2] or 0, watermark, row[4], snapshot_rows)


def choose_mode(
    previous: PreviousExtract | None, *, force_full: bool, now: datetime
) -> tuple[str, str]:
    """('full' | 'incremental', why): incremental only on top of a trustworthy snapshot."""
    if force_full:
        return "full", "full extract requested (run tag)"
    if previous is None:
        return "full", "no complete extract yet"
    if not previous.watermark:
        return "full", "previous extract left no watermark"
    if previous.snapshot_rows != previous.row_count:
        return "full", "snapshot differs from what the last extract wrote"
    if previous.last_full_at is None or now - previous.last_full_at > FULL_EXTRACT_MAX_AGE:
        return "full", "last full extract is older than 24 h"
    return "incremental", "on top of the extract of " + previous.finished_at.isoformat()


@dataclass
class ExtractRecord:
    """What ``sync.extracts`` says about one extract."""

    tenant: str
    side: Side
    entity: Entity
    run_id: str | None
    mode: str
    started_at: datetime
    requests: int = 0
    watermark: dict[str, Any] | None = None
    error: str | None = None


_EXTRACT_INSERT = """
INSERT INTO sync.extracts (tenant, system, entity, run_id, mode, complete, row_count, requests,
                           started_at, finished_at, watermark, error)
VALUES ($tenant, $side, $entity, $run_id, $mode, $complete, $row_count, $requests,
        $started_at, $finished_at, $watermark, $error)
"""


def _extract_params(rec: ExtractRecord, complete: bool, row_count: int | None) -> dict[str, Any]:
    return {
        "tenant": rec.tenant,
        "side": rec.side,
        "entity": rec.entity,
        "run_id": rec.run_id,
        "mode": rec.mode,
        "complete": complete,
        "row_count": row_count,
        "requests": rec.requests,
        "started_at": rec.started_at,
        "finished_at": datetime.now(UTC),
        "watermark": json.dumps(rec.watermark) if rec.watermark is not None else None,
        "error": rec.error,
    }


def record_failed_extract(conn: duckdb.DuckDBPyConnection, rec: ExtractRecord) -> None:
    """An incomplete extract: only its ``sync.extracts`` row; raw and staging stay as they were."""
    conn.execute(_EXTRACT_INSERT, _extract_params(rec, False, None))


def write_snapshot(
    conn: duckdb.DuckDBPyConnection,
    rec: ExtractRecord,
    new_rows: pa.Table,
    *,
    replace: str,
    keep_pages: list[tuple[str, int]] | None = None,
    ids: list[int] | None = None,
) -> int:
    """Merge ``new_rows`` into the tenant's raw snapshot, rebuild staging, record the extract.

    ``replace`` says which previous raw rows go: ``"all"`` (a full extract), ``"ids"``
    (Svenn incremental: the records fetched again) or ``"pages"`` (Tripletex: every page
    not in ``keep_pages``, i.e. not answered 304) or ``"by_id"`` (a targeted read: the
    rows of ``ids``, the records it asked for, whether found again or gone; every other
    row stays). Returns the staging row count.
    """
    side, entity, tenant = rec.side, rec.entity, rec.tenant
    raw = raw_table(side, entity)
    with staged_rows(conn, new_rows) as staged, transaction(conn):
        if replace == "all":
            conn.execute(f"DELETE FROM {raw} WHERE tenant = ?", [tenant])
        elif replace == "ids":
            conn.execute(
                f"DELETE FROM {raw} WHERE tenant = ? AND id IN "
                f"(SELECT TRY_CAST(raw_json::JSON->>'$.id' AS BIGINT) FROM {staged})",
                [tenant],
            )
        elif replace == "by_id":
            conn.execute(
                f"DELETE FROM {raw} WHERE tenant = ? AND list_contains(?::BIGINT[], id)",
                [tenant, list(ids or [])],
            )
        elif replace == "pages":
            pages = keep_pages or []
            kept = pa.table(  # typed: the list may be empty
                {
                    "listing": pa.array([p[0] for p in pages], pa.string()),
                    "page": pa.array([p[1] for p in pages], pa.int32()),
                }
            )
            with staged_rows(conn, kept) as kept_pages:
                conn.execute(
                    f"DELETE FROM {raw} AS r WHERE tenant = ? AND NOT EXISTS "
                    f"(SELECT 1 FROM {kept_pages} k WHERE k.listing = r.listing "
                    "AND k.page = r.page)",
                    [tenant],
                )
        else:
            raise ValueError(f"unknown replace mode {replace!r}")
        conn.execute(
            raw_insert_sql(side, entity, staged),
            {"tenant": tenant, "extracted_at": datetime.now(UTC)},
        )
        conn.execute(f"DELETE FROM {staging_table(side, entity)} WHERE tenant = ?", [tenant])
        conn.execute(staging_rebuild_sql(side, entity), {"tenant": tenant})
        (row_count,) = conn.execute(
            f"SELECT count(*) FROM {staging_table(side, entity)} WHERE tenant = ?", [tenant]
        ).fetchone()
        conn.execute(_EXTRACT_INSERT, _extract_params(rec, True, row_count))
    return row_count


def json_rows(records: list[dict[str, Any]]) -> list[str]:
    """Records as compact JSON text, the form the raw tables ingest."""
    return [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
