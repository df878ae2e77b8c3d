"""The state store's two backends behind ``SYNC_STORE``: one DuckDB file, or a DuckLake.

``duckdb`` (default): today's single file, one writing process at a time. ``ducklake``: the
same schemas and the same SQL in a DuckLake whose catalog is a PostgreSQL database
(``SYNC_DUCKLAKE_CATALOG``, a libpq string) and whose Parquet files live under
``SYNC_DUCKLAKE_DATA_PATH``: runs of many tenants, in many processes or machines, commit at
once (optimistic commits, no file lock), and analysts attach it read-only without ever
blocking them.

A DuckLake connection is an in-memory DuckDB with the lake attached and made the default
catalog (``USE``), so ``sync.errors`` or ``staging.svenn_projects`` mean the lake's tables.
The extensions come from the installed ``duckdb-ext-*`` wheels, loaded by path, with
DuckDB's auto-install and auto-load off: nothing is downloaded at run time, and a missing
wheel is an error naming it. Loading them costs about a second, so each process keeps one
DuckDB instance per lake and hands out a cursor (own transaction, own temp tables) per
unit of work.

What DuckLake cannot take is adapted in one place, :func:`run_ddl`, which the migration
runner calls for every migration: no PRIMARY KEY/UNIQUE/index (the uniqueness they gave
is kept by guarded writes, :func:`replace_row`, proven by the tests), and only literal
DEFAULTs. A table that must stay unique under writers on several machines (the tenant
lease, G13) cannot rely on DuckLake: two transactions appending the same key both commit
(checked: two guarded ``INSERT … WHERE NOT EXISTS`` of one tenant both succeed; only two
deletes/updates of one data file conflict). Those tables (:data:`CATALOG_TABLES`) live in
the catalog's PostgreSQL with their real keys — the store every run already shares — and
the lake sees them through a view, so readers' SQL is unchanged; their writers go through
:func:`catalog_execute` (``sync_pipeline.lease``).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

STORE_ENV = "SYNC_STORE"
CATALOG_ENV = "SYNC_DUCKLAKE_CATALOG"
DATA_PATH_ENV = "SYNC_DUCKLAKE_DATA_PATH"
DEFAULT_DATA_PATH = "data/lake"
STORES = ("duckdb", "ducklake")

#: The lake's name inside each connection, and the catalog's PostgreSQL attached beside it.
LAKE = "sync_lake"
CATALOG_DB = "sync_catalog"
#: Tables kept in the catalog's PostgreSQL with their real keys (see the module docstring).
CATALOG_TABLES = ("sync.leases",)

_EXTENSIONS = (("duckdb-ext-postgres", "postgres_scanner"), ("duckdb-ext-ducklake", "ducklake"))


class StoreConfigError(RuntimeError):
    """The store settings are incomplete or the extension wheels are missing."""


def store_kind() -> str:
    kind = (os.environ.get(STORE_ENV) or "duckdb").strip().lower()
    if kind not in STORES:
        raise StoreConfigError(f"{STORE_ENV}={kind!r}: expected one of {', '.join(STORES)}")
    return kind


@dataclass(frozen=True)
class LakeConfig:
    catalog: str  # libpq connection string of the catalog database
    data_path: str

    @classmethod
    def from_env(cls) -> LakeConfig:
        catalog = os.environ.get(CATALOG_ENV, "").strip()
        if not catalog:
            raise StoreConfigError(
                f"{STORE_ENV}=ducklake needs {CATALOG_ENV} (a libpq connection string of the "
                "catalog's PostgreSQL database, e.g. 'host=db dbname=sync_lake user=sync')"
            )
        data_path = os.environ.get(DATA_PATH_ENV) or DEFAULT_DATA_PATH
        if "://" not in data_path:  # a local folder: absolute, and there
            Path(data_path).mkdir(parents=True, exist_ok=True)
            data_path = str(Path(data_path).resolve())
        return cls(catalog, data_path.rstrip("/") + "/")


def extension_files() -> list[Path]:
    """The extension files of the installed wheels, for this DuckDB release (never fetched)."""
    files = []
    for dist, name in _EXTENSIONS:
        try:
            found = [
                f
                for f in importlib.metadata.distribution(dist).files or []
                if f.name == f"{name}.duckdb_extension" and f"/v{duckdb.__version__}/" in str(f)
            ]
        except importlib.metadata.PackageNotFoundError:
            found = []
        if not found:
            raise StoreConfigError(
                f"{STORE_ENV}=ducklake needs the {dist} wheel built for DuckDB "
                f"{duckdb.__version__} (pip install '{dist}=={duckdb.__version__}.*')"
            )
        files.append(Path(str(importlib.metadata.distribution(dist).locate_file(found[0]))))
    return files


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect_lake(config: LakeConfig, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB with the lake attached as the default catalog (the analyst's
    read-only attach is this with ``read_only=True``)."""
    conn = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        for path in extension_files():
            conn.execute(f"LOAD {_quote(str(path))}")
        _attach(conn, config, read_only)
    except BaseException:
        conn.close()
        raise
    return conn


def _attach(conn: duckdb.DuckDBPyConnection, config: LakeConfig, read_only: bool) -> None:
    options = [f"DATA_PATH {_quote(config.data_path)}"] + (["READ_ONLY"] if read_only else [])
    conn.execute(
        f"ATTACH {_quote('ducklake:postgres:' + config.catalog)} AS {LAKE} ({', '.join(options)})"
    )
    conn.execute(f"ATTACH {_quote(config.catalog)} AS {CATALOG_DB} (TYPE postgres, READ_ONLY)")
    conn.execute(f"USE {LAKE}")


_lakes: dict[tuple[int, bool], tuple[duckdb.DuckDBPyConnection, LakeConfig | None]] = {}
_migrated: set[tuple[int, LakeConfig]] = set()
_lakes_lock = threading.Lock()


def _lake(config: LakeConfig, read_only: bool) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance with the lake attached. Another lake (a test's) is
    attached in place of the previous one, keeping the extensions loaded."""
    key = (os.getpid(), read_only)
    with _lakes_lock:
        held = _lakes.get(key)
        if held is not None and held[1] != config:
            conn = held[0]
            if held[1] is not None:
                conn.execute("USE memory")
                conn.execute(f"DETACH {LAKE}")
                conn.execute(f"DETACH {CATALOG_DB}")
            _attach(conn, config, read_only)
            _lakes[key] = (conn, config)
        elif held is None:
            _lakes[key] = (connect_lake(config, read_only=read_only), config)
        return _lakes[key][0]


def forget_lake() -> None:
    """Detach this process's lakes and close its catalog sessions, keeping the extensions
    loaded (a test about to drop its catalog database)."""
    with _lakes_lock:
        for key in [k for k in _lakes if k[0] == os.getpid()]:
            conn, config = _lakes[key]
            if config is not None:
                conn.execute("USE memory")
                conn.execute(f"DETACH {LAKE}")
                conn.execute(f"DETACH {CATALOG_DB}")
                _lakes[key] = (conn, None)
        for key in [k for k in _pg if k[0] == os.getpid()]:
            _pg.pop(key).close()
        _migrated.clear()


def close_lakes() -> None:
    """Close this process's lake connections (a test dropping its catalog database)."""
    with _lakes_lock:
        for key in [k for k in _lakes if k[0] == os.getpid()]:
            _lakes.pop(key)[0].close()
        for key in [k for k in _pg if k[0] == os.getpid()]:
            _pg.pop(key).close()
        _migrated.clear()


@contextmanager
def open_lake(
    read_only: bool = False, config: LakeConfig | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on this process's DuckDB instance of the lake, migrated (unless read-only)."""
    from sync_pipeline.resources.storage import migrate

    config = config or LakeConfig.from_env()
    cursor = _lake(config, read_only).cursor()
    try:
        cursor.execute(f"USE {LAKE}")
        if not read_only and (os.getpid(), config) not in _migrated:
            migrate(cursor)
            _migrated.add((os.getpid(), config))
        yield cursor
    finally:
        cursor.close()


@contextmanager
def open_store(
    read_only: bool = False, database: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated connection on the backend ``SYNC_STORE`` names (``database``: the DuckDB
    file, default ``SYNC_DUCKDB_PATH``; ignored on ``ducklake``)."""
    if store_kind() == "ducklake":
        with open_lake(read_only) as conn:
            yield conn
        return
    from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path

    path = database or duckdb_path()
    if read_only:
        with duckdb.connect(path, read_only=True) as conn:
            yield conn
        return
    with SyncDuckDB(database=path).get_connection() as conn:
        yield conn


def catalog_dsn(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The catalog's libpq string when ``conn`` is a lake connection, else None."""
    row = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database() "
        "AND type = 'ducklake'"
    ).fetchone()
    return None if row is None else row[0].removeprefix("postgres:")


# -- DDL the lake cannot take, adapted in one place -------------------------------------------
_CONSTRAINT = re.compile(r"\s+(PRIMARY\s+KEY|UNIQUE)\b", re.IGNORECASE)
_TABLE_CONSTRAINT = re.compile(r",\s*(PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.IGNORECASE)
_NON_LITERAL_DEFAULT = re.compile(r"\s+DEFAULT\s+(?!'|-?\d|NULL\b|TRUE\b|FALSE\b)\w+\(\)", re.I)
_CREATE_TABLE = re.compile(
    r"^\s*(?:--[^\n]*\n\s*)*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)", re.IGNORECASE
)
_CREATE_INDEX = re.compile(r"^\s*(?:--[^\n]*\n\s*)*CREATE\s+(UNIQUE\s+)?INDEX\b", re.IGNORECASE)


def lake_ddl(statement: str) -> str | None:
    """One statement as the lake takes it: keys and non-literal defaults dropped (the writes
    keep what they guaranteed), indexes skipped (None)."""
    if _CREATE_INDEX.match(statement):
        return None
    statement = _TABLE_CONSTRAINT.sub("", statement)
    statement = _CONSTRAINT.sub("", statement)
    return _NON_LITERAL_DEFAULT.sub("", statement)


def run_ddl(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run a migration's SQL on either backend: as written on a DuckDB file; on a lake each
    statement adapted by :func:`lake_ddl`, and a :data:`CATALOG_TABLES` table created in the
    catalog's PostgreSQL (with its keys) and seen in the lake through a view."""
    dsn = catalog_dsn(conn)
    if dsn is None:
        conn.execute(sql)
        return
    for statement in conn.extract_statements(sql):
        text = statement.query
        created = _CREATE_TABLE.match(text)
        if created and created.group(1).lower() in CATALOG_TABLES:
            table = created.group(1).lower()
            schema = table.split(".")[0]
            catalog_execute(dsn, f"CREATE SCHEMA IF NOT EXISTS {schema}; {text}")
            conn.execute("CALL pg_clear_cache()")
            conn.execute(f"CREATE VIEW IF NOT EXISTS {table} AS SELECT * FROM {CATALOG_DB}.{table}")
            continue
        adapted = lake_ddl(text)
        if adapted is not None and adapted.strip():
            conn.execute(adapted)


# -- the catalog's PostgreSQL, for the tables that live there ---------------------------------
_pg: dict[tuple[int, str], Any] = {}
_PARAM = re.compile(r"\$(\w+)|\?")


def _pg_sql(sql: str) -> str:
    """DuckDB's ``$name``/``?`` parameters as psycopg2's, so one SQL text serves both."""
    return _PARAM.sub(lambda m: f"%({m.group(1)})s" if m.group(1) else "%s", sql)


def catalog_execute(
    dsn: str, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[tuple]:
    """One autocommitted statement in the catalog's PostgreSQL; the rows it returns."""
    import psycopg2

    key = (os.getpid(), dsn)
    conn = _pg.get(key)
    if conn is None or conn.closed:
        conn = _pg[key] = psycopg2.connect(dsn)
        conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(_pg_sql(sql), params or None)
        return cur.fetchall() if cur.description else []


def execute(
    conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[tuple]:
    """Run a statement on a :data:`CATALOG_TABLES` table where that table lives: the DuckDB
    file, or the lake's catalog database (one SQL text; a real key and row locks there)."""
    dsn = catalog_dsn(conn)
    if dsn is None:
        return conn.execute(sql, params).fetchall()
    return catalog_execute(dsn, sql, params)


# -- guarded writes: the uniqueness a key used to give ----------------------------------------
def replace_row(
    conn: duckdb.DuckDBPyConnection, table: str, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """The one row of ``table`` for ``key`` becomes ``values`` (``INSERT OR REPLACE`` without
    a key): a delete and an insert, to be run inside the caller's transaction so no reader
    ever sees none or two. Concurrent writers of one key must be excluded by the caller (the
    tenant lease for per-tenant rows), as two DuckLake appends never conflict."""
    where = " AND ".join(f"{col} = ?" for col in key)
    columns = {**key, **values}
    placeholders = ", ".join("now()" if v is NOW else "?" for v in columns.values())
    params = [v for v in columns.values() if v is not NOW]
    conn.execute(f"DELETE FROM {table} WHERE {where}", list(key.values()))
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", params)


class _Now:
    def __repr__(self) -> str:
        return "NOW"


#: A value :func:`replace_row` writes as the database's ``now()``.
NOW = _Now()


def replace_tenant_context(
    conn: duckdb.DuckDBPyConnection,
    tenant: str,
    employee_id: int | None,
    company_id: int | None,
) -> None:
    """P10: the token owner the extract landed, one row per tenant (was ``INSERT OR
    REPLACE``, which a lake without keys refuses); inside the caller's transaction."""
    replace_row(
        conn,
        "sync.tenant_context",
        {"tenant": tenant},
        {
            "tripletex_employee_id": employee_id,
            "tripletex_company_id": company_id,
            "fetched_at": NOW,
        },
    )
