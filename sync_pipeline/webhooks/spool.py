"""The receiver's durable spool: a SQLite journal the sensor empties into ``sync.webhook_events``.

Why not write into the state store directly: DuckDB lets one process hold the file, and a
run holds it for seconds at a time; Tripletex and Svenn give a delivery about 10 s. A
receiver that waited for the file would time out under load and get the same delivery
again and again (or, at Tripletex, its subscription disabled). So the receiver writes only
to its own SQLite file (WAL, ``synchronous=FULL``: a stored row survives a power loss
before the 2xx leaves), where the unique key (source, tenant, delivery_id) de-duplicates
redeliveries in the same write and concurrent requests wait milliseconds, not seconds.
The sensor, which may wait for the state store, moves the rows into
``sync.webhook_events`` with a guarded insert (the DuckLake backend has no unique keys),
then marks them moved here; a crash between the two moves them again, and the guard
keeps one copy.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from sync_pipeline.resources.state import staged_rows, transaction

SPOOL_ENV = "SYNC_WEBHOOK_SPOOL"
DEFAULT_SPOOL = "data/webhooks.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL, tenant TEXT NOT NULL, delivery_id TEXT NOT NULL,
  event TEXT NOT NULL, entity TEXT NOT NULL, action TEXT NOT NULL,
  record_id INTEGER NOT NULL, version INTEGER,
  received_at TEXT NOT NULL, body TEXT NOT NULL, moved_at TEXT,
  UNIQUE (source, tenant, delivery_id)
);
CREATE INDEX IF NOT EXISTS deliveries_unmoved ON deliveries (moved_at, seq);
"""


def spool_path() -> Path:
    """``$SYNC_WEBHOOK_SPOOL`` or ``data/webhooks.sqlite`` (beside the state store)."""
    return Path(os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL)


@dataclass(frozen=True)
class Event:
    """One delivery, normalised: which record of which entity changed how."""

    source: str  # 'tripletex' | 'svenn'
    tenant: str
    delivery_id: str
    event: str  # as the system named it
    entity: str  # 'project' | 'customer' | 'employee'
    action: str  # 'create' | 'update' | 'delete'
    record_id: int
    version: int | None
    body: str


#: Spool files this process has prepared (WAL mode, schema): switching the journal mode
#: takes an exclusive lock that SQLite's busy timeout does not wait for, so a burst of first
#: deliveries must not all try it at once.
_prepared: set[Path] = set()
_prepare_lock = threading.Lock()


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    with _prepare_lock:
        if path in _prepared:
            return
        # WAL is a property of the file: set once (by this or another process), it stays
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        _prepared.add(path)


@contextmanager
def connect(path: str | Path | None = None) -> Iterator[sqlite3.Connection]:
    path = (Path(path) if path is not None else spool_path()).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # a new (or removed) spool is prepared again
        _prepared.discard(path)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        _prepare(conn, path)
        conn.execute("PRAGMA synchronous=FULL")
        yield conn
    finally:
        conn.close()


def store(conn: sqlite3.Connection, event: Event) -> bool:
    """Store a delivery durably; False when this delivery id was stored before."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO deliveries (source, tenant, delivery_id, event, entity, action,"
        " record_id, version, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.source,
            event.tenant,
            event.delivery_id,
            event.event,
            event.entity,
            event.action,
            event.record_id,
            event.version,
            datetime.now(UTC).isoformat(),
            event.body,
        ),
    )
    return cur.rowcount == 1


_COLUMNS = (
    "seq",
    "source",
    "tenant",
    "delivery_id",
    "event",
    "entity",
    "action",
    "record_id",
    "version",
    "received_at",
)


#: Delivered rows are kept this long: far longer than either system retries (24–30 h), so a
#: late redelivery still meets its first copy.
KEEP_DAYS = 7


def prune(spool: sqlite3.Connection, state: duckdb.DuckDBPyConnection) -> None:
    """Forget moved deliveries and consumed events older than ``KEEP_DAYS``."""
    horizon = datetime.now(UTC) - timedelta(days=KEEP_DAYS)
    spool.execute(
        "DELETE FROM deliveries WHERE moved_at IS NOT NULL AND moved_at < ?", (horizon.isoformat(),)
    )
    state.execute("DELETE FROM sync.webhook_events WHERE consumed_at < ?", [horizon])


def move_to_store(
    spool: sqlite3.Connection, state: duckdb.DuckDBPyConnection, limit: int = 10_000
) -> int:
    """Move unmoved deliveries into ``sync.webhook_events``; returns how many were new there."""
    rows = spool.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM deliveries WHERE moved_at IS NULL ORDER BY seq LIMIT ?",
        (limit,),
    ).fetchall()
    if not rows:
        return 0
    columns = {name: [row[i] for row in rows] for i, name in enumerate(_COLUMNS)}
    columns["received_at"] = [datetime.fromisoformat(v) for v in columns["received_at"]]
    with transaction(state), staged_rows(state, columns) as staged:
        before = state.execute("SELECT count(*) FROM sync.webhook_events").fetchone()[0]
        state.execute(
            f"""
            INSERT INTO sync.webhook_events (tenant, source, delivery_id, seq, event, entity,
              action, record_id, version, received_at, stored_at)
            SELECT s.tenant, s.source, s.delivery_id, s.seq, s.event, s.entity, s.action,
                   s.record_id, s.version, s.received_at, now()
            FROM {staged} s
            WHERE NOT EXISTS (
              SELECT 1 FROM sync.webhook_events e
              WHERE e.tenant = s.tenant AND e.source = s.source AND e.delivery_id = s.delivery_id)
            """
        )
        after = state.execute("SELECT count(*) FROM sync.webhook_events").fetchone()[0]
    spool.execute(
        "UPDATE deliveries SET moved_at = ? WHERE moved_at IS NULL AND seq <= ?",
        (datetime.now(UTC).isoformat(), rows[-1][0]),
    )
    return after - before
