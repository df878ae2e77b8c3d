"""Parquet exports of the error log, the runs and the design card's frames, for analysts.

Analysts read these files instead of the live DuckDB file, which any open session (even
read-only) would hold against the pipeline's writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb

EXPORT_DIR_ENV = "SYNC_EXPORT_DIR"
DEFAULT_EXPORT_DIR = "data/exports"


def export_dir() -> Path:
    """``$SYNC_EXPORT_DIR`` or ``data/exports``."""
    return Path(os.environ.get(EXPORT_DIR_ENV) or DEFAULT_EXPORT_DIR)


def _copy_parquet(conn: duckdb.DuckDBPyConnection, query: str, params: list, path: Path) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file, and never
    blocks one: readers keep the file they opened. The path goes through the relation API,
    not into SQL text (a directory with a quote in it must not break or change the query)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        conn.sql(query, params=params).write_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_parquet(conn: duckdb.DuckDBPyConnection, tenant: str, directory: Path) -> list[Path]:
    """``open_errors/``, ``runs/``, ``errors/`` (the whole log, resolved rows included),
    ``eligibility_checks/`` and ``matches/`` as ``tenant=<t>/data.parquet``: what analysts read instead of the live DuckDB file, which
    any open session (even read-only) would hold against the pipeline's writes."""
    written = []
    for name, query in (
        (
            "open_errors",
            "SELECT * EXCLUDE (tenant) FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
            "ORDER BY severity, code, entity, record_label",
        ),
        ("runs", "SELECT * EXCLUDE (tenant) FROM sync.runs WHERE tenant = ? ORDER BY started_at"),
        (
            "errors",
            "SELECT * EXCLUDE (tenant) FROM sync.errors WHERE tenant = ? "
            "ORDER BY first_seen_at, code, entity, record_label",
        ),
        # the design card's frames (G10, G3): which check excluded what, how pairs matched
        (
            "eligibility_checks",
            "SELECT * EXCLUDE (tenant) FROM sync.eligibility_checks WHERE tenant = ? "
            "ORDER BY checked_at, entity, side, id, rule_id",
        ),
        (
            "matches",
            "SELECT * EXCLUDE (tenant) FROM sync.matches WHERE tenant = ? "
            "ORDER BY matched_at, entity, via, key",
        ),
    ):
        path = directory / name / f"tenant={tenant}" / "data.parquet"
        _copy_parquet(conn, query, [tenant], path)
        written.append(path)
    return written
