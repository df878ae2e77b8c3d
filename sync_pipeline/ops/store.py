"""The state store opened outside a run: one opener, two ways to wait for the file.

DuckDB lets one process hold the file; a run holds it only for short units of work. A
command waits a while and then says who holds it (``open_db``); a sensor tick must not hang,
so it gives up and tries again next tick (``brief_connection``). Every connection these open
goes through ``connect`` — the seam a second storage backend plugs into.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from sync_pipeline.ops import OperatorError
from sync_pipeline.resources.backends import open_lake, store_kind
from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path, migrate

#: How long a command waits for another process to release the DuckDB file.
LOCK_WAIT_S = float(os.environ.get("SYNC_DUCKDB_LOCK_WAIT", "10"))
#: After a run: other tenants' runs hold the file only for short units of work.
SUMMARY_LOCK_WAIT_S = 120.0


def connect(
    database: str, *, read_only: bool = False, config: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """The one place outside a run's resource that opens the state store."""
    return duckdb.connect(database, read_only=read_only, config=dict(config or {}))


def _is_lock_error(exc: duckdb.IOException) -> bool:
    return "lock" in str(exc).lower()


def _connect_within(
    database: str, wait_s: float, config: Mapping[str, Any] | None, poll_s: float
) -> tuple[duckdb.DuckDBPyConnection | None, duckdb.IOException | None]:
    """A connection once the file is free within ``wait_s``, else (None, the lock error).
    Any other I/O error is raised: it is not a busy file."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect(database, config=config), None
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                return None, exc
            time.sleep(poll_s)


def _lock_holder(message: str) -> str:
    pid = re.search(r"PID (\d+)", message)
    return f" (held by process {pid.group(1)})" if pid else ""


@contextmanager
def open_db(wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, migrated; waits a while for another writer, then says so.
    On a DuckLake (``SYNC_STORE=ducklake``) nothing waits: writers never block each other."""
    if store_kind() == "ducklake":
        with open_lake() as conn:
            yield conn
        return
    path = duckdb_path()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn, busy = _connect_within(path, LOCK_WAIT_S if wait_s is None else wait_s, None, 0.1)
    except duckdb.IOException as exc:
        raise OperatorError(f"{path}: cannot open the sync database ({exc})") from None
    if conn is None:
        raise OperatorError(
            f"{path}: the sync database is locked by another process"
            f"{_lock_holder(str(busy))}; try again when it has finished"
        )
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


@contextmanager
def brief_connection(
    store: SyncDuckDB, wait_s: float = 5.0
) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection if the file is free within ``wait_s`` (a run holds it only briefly),
    else None: a sensor tick must not hang on a busy state store. Same configuration as
    the resource's connections, which DuckDB requires within one process."""
    if store_kind() == "ducklake":
        with open_lake() as conn:
            yield conn
        return
    config = {"custom_user_agent": "dagster", **store.connection_config}
    conn, _busy = _connect_within(store.database, wait_s, config, 0.2)
    if conn is None:
        yield None
        return
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def dict_rows(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    """A query's rows as dicts by column name."""
    cur = conn.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
