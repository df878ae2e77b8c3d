"""State-store upkeep (group ``maintenance``), on its own nightly schedule.

On a DuckLake every commit of every tenant's run leaves a small Parquet file and a snapshot;
left alone, reads slow down with the file count and the catalog grows without end. Once a
night (after the nightly full reconcile) this merges adjacent small files, expires the
snapshots older than ``SYNC_DUCKLAKE_KEEP_DAYS`` (default 7: a week of time travel for an
analyst), and deletes the files those snapshots alone referenced once they have been
unreferenced for an hour (a query that started before still finds its files).

Nothing a user sees is lost: ``sync.errors`` keeps its history as rows (``first_seen_at`` …
``resolved_at``), as do ``sync.runs`` and the write-ahead log; a snapshot is only a way back
to an older state of the tables, never the record of one. On the ``duckdb`` file it is a
``CHECKPOINT`` (the write-ahead file folded into the database), nothing else to do.

Wiring (``definitions.py``): ``jobs=[…, maintenance_job]``,
``schedules=[*SCHEDULES, maintenance_schedule]``; the asset itself loads with the package.
"""

from __future__ import annotations

import os
import time

import dagster as dg

from sync_pipeline.resources import backends
from sync_pipeline.resources.storage import SyncDuckDB

KEEP_DAYS_ENV = "SYNC_DUCKLAKE_KEEP_DAYS"
DEFAULT_KEEP_DAYS = 7.0
#: How long a file stays on disk after the last snapshot referencing it expired.
FILE_GRACE = "INTERVAL 1 HOUR"
GROUP = "maintenance"


def keep_days() -> float:
    return float(os.environ.get(KEEP_DAYS_ENV) or DEFAULT_KEEP_DAYS)


def _file_counts(conn) -> tuple[int, int]:
    (files, deletes) = conn.execute(
        "SELECT coalesce(sum(file_count), 0), coalesce(sum(delete_file_count), 0) "
        f"FROM ducklake_table_info('{backends.LAKE}')"
    ).fetchone()
    return int(files), int(deletes)


def _snapshots(conn) -> int:
    return conn.execute(f"SELECT count(*) FROM ducklake_snapshots('{backends.LAKE}')").fetchone()[0]


def maintain(conn, days: float | None = None) -> dict[str, object]:
    """One round of upkeep on the store ``conn`` is on; what it did, for the metadata."""
    started = time.monotonic()
    if backends.catalog_dsn(conn) is None:
        conn.execute("CHECKPOINT")
        return {"backend": "duckdb", "action": "CHECKPOINT", "duration_s": _since(started)}
    days = keep_days() if days is None else days
    files_before, deletes_before = _file_counts(conn)
    snapshots_before = _snapshots(conn)
    lake = backends.LAKE
    conn.execute(f"CALL ducklake_merge_adjacent_files('{lake}')").fetchall()
    conn.execute(f"CALL ducklake_rewrite_data_files('{lake}')").fetchall()  # fold deletes in
    expired = conn.execute(
        f"CALL ducklake_expire_snapshots('{lake}', "
        "older_than => now() - CAST(? AS DOUBLE) * INTERVAL '1 day')",
        [days],
    ).fetchall()
    removed = conn.execute(
        f"CALL ducklake_cleanup_old_files('{lake}', older_than => now() - {FILE_GRACE})"
    ).fetchall()
    files_after, deletes_after = _file_counts(conn)
    return {
        "backend": "ducklake",
        "data_files_before": files_before,
        "data_files_after": files_after,
        "delete_files_before": deletes_before,
        "delete_files_after": deletes_after,
        "snapshots_before": snapshots_before,
        "snapshots_expired": len(expired),
        "files_removed": len(removed),
        "keep_days": days,
        "duration_s": _since(started),
    }


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


@dg.asset(
    key=["sync", "store_maintenance"],
    group_name=GROUP,
    kinds={"duckdb", "python"},
    owners=["team:sync"],
    description=(
        "Nightly upkeep of the state store: on DuckLake merges small data files, folds "
        "deletions in, expires snapshots older than SYNC_DUCKLAKE_KEEP_DAYS (default 7) and "
        "removes the files only they used (sync.errors keeps its history as rows, so nothing "
        "a user sees is lost); on the DuckDB file a CHECKPOINT."
    ),
)
def store_maintenance(duckdb: SyncDuckDB) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        done = maintain(conn)
    return dg.MaterializeResult(metadata=done)


maintenance_job = dg.define_asset_job(
    "maintenance_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Upkeep of the state store (small files merged, old snapshots expired).",
)

#: 03:30 Oslo time: after the nightly full reconcile (02:00), when fewest runs write, so a
#: merge seldom meets a run's commit (DuckLake retries a commit that does not truly clash).
maintenance_schedule = dg.ScheduleDefinition(
    name="nightly_store_maintenance",
    cron_schedule="30 3 * * *",
    execution_timezone="Europe/Oslo",
    job=maintenance_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Merges the state store's small files and expires old snapshots, nightly.",
)
