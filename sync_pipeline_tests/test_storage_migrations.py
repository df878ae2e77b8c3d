"""The DuckDB schema is versioned migrations, run automatically and idempotently (issue 5).

A database opened through the resource gets every migration it lacks, once; reopening it
changes nothing and keeps the data; a later migration is applied on its own on top.
"""

from __future__ import annotations

import duckdb
import pytest

from sync_pipeline.assets.rules.step import COLUMNS
from sync_pipeline.model import (
    COMMON_STAGING_COLUMNS,
    ENTITIES,
    SIDES,
    STAGING_COLUMNS,
    staging_table,
)
from sync_pipeline.resources import storage
from sync_pipeline.resources.storage import MIGRATIONS, SyncDuckDB, migrate

_LINK_COLUMNS = {
    "tenant",
    "entity",
    "svenn_id",
    "tripletex_id",
    "key",
    "origin",
    "state",
    "base",
    "tripletex_version",
    "linked_at",
    "last_synced_at",
}


def _versions(conn: duckdb.DuckDBPyConnection) -> list[int]:
    rows = conn.execute("SELECT version FROM sync.schema_migrations ORDER BY version")
    return [v for (v,) in rows.fetchall()]


def test_migrations_run_on_first_connect_with_increasing_versions(tmp_path):
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == sorted(set(versions)), "versions must be unique and increasing"
    with SyncDuckDB(database=str(tmp_path / "fresh.duckdb")).get_connection() as conn:
        assert _versions(conn) == versions
        cols = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'sync' AND table_name = 'links'"
        ).fetchall()
    assert {c for (c,) in cols} >= _LINK_COLUMNS


def test_migrations_are_idempotent_and_keep_the_data(tmp_path):
    db = SyncDuckDB(database=str(tmp_path / "kept.duckdb"))
    with db.get_connection() as conn:
        conn.execute(
            "INSERT INTO sync.links (tenant, entity, svenn_id, tripletex_id, key, origin, state,"
            " base, linked_at) VALUES ('acme', 'customer', 1, 2, '10', 'matched', 'active',"
            ' \'{"number": "10"}\', now())'
        )
        assert migrate(conn) == []
    with db.get_connection() as conn:  # reopening runs migrate() again
        assert migrate(conn) == []
        assert conn.execute("SELECT count(*) FROM sync.schema_migrations").fetchone()[0] == len(
            MIGRATIONS
        )
        assert conn.execute("SELECT tenant, key FROM sync.links").fetchall() == [("acme", "10")]


def test_a_new_migration_is_applied_once_on_top_of_an_existing_database(tmp_path, monkeypatch):
    db = SyncDuckDB(database=str(tmp_path / "upgrade.duckdb"))
    with db.get_connection():
        pass
    nxt = MIGRATIONS[-1][0] + 1
    monkeypatch.setattr(
        storage,
        "MIGRATIONS",
        [*MIGRATIONS, (nxt, "test column", "ALTER TABLE sync.links ADD COLUMN note VARCHAR;")],
    )
    with db.get_connection() as conn:
        assert _versions(conn)[-1] == nxt
        assert migrate(conn) == []
        conn.execute("SELECT note FROM sync.links").fetchall()


def test_a_failing_migration_is_rolled_back_and_not_recorded(tmp_path, monkeypatch):
    path = str(tmp_path / "broken.duckdb")
    with SyncDuckDB(database=path).get_connection():
        pass
    nxt = MIGRATIONS[-1][0] + 1
    broken = "CREATE TABLE sync.half_done (x INTEGER); SELECT * FROM no_such_table;"
    monkeypatch.setattr(storage, "MIGRATIONS", [*MIGRATIONS, (nxt, "broken", broken)])
    conn = duckdb.connect(path)
    try:
        with pytest.raises(duckdb.Error):
            migrate(conn)
        assert nxt not in _versions(conn)
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name = 'half_done'"
        ).fetchall()
        assert tables == []
    finally:
        conn.close()


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, tuple[str, str]]:
    schema, name = table.split(".")
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {column: (kind, nullable) for column, kind, nullable in rows}


def test_a_database_migrated_from_scratch_has_exactly_the_staging_columns_model_declares(
    tmp_path,
):
    """Migration 1 is literal SQL (a change to model.py cannot alter a shipped migration); a
    staging column model.py declares and no migration adds, or one no longer declared, shows
    here: the migrations and model.py must agree."""
    db = SyncDuckDB(database=str(tmp_path / "fresh.duckdb"))
    with db.get_connection() as migrated, duckdb.connect() as declared:
        declared.execute("CREATE SCHEMA staging")
        for side in SIDES:
            for entity in ENTITIES:
                table = staging_table(side, entity)
                cols = {**COMMON_STAGING_COLUMNS, **STAGING_COLUMNS[entity]}
                body = ", ".join(f"{name} {kind}" for name, kind in cols.items())
                declared.execute(f"CREATE TABLE {table} ({body})")
                assert _columns(migrated, table) == _columns(declared, table), table


def test_every_rule_insert_names_exactly_the_columns_of_its_table(tmp_path):
    """The rule steps' INSERTs name their columns (step.COLUMNS) instead of relying on the
    DDL's column order; the names must be the table's, all of them."""
    with SyncDuckDB(database=str(tmp_path / "fresh.duckdb")).get_connection() as conn:
        for table, columns in COLUMNS.items():
            assert len(set(columns)) == len(columns), table
            assert set(columns) == set(_columns(conn, table)), table
