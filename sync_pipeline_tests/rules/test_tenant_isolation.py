"""One tenant's run never touches another tenant's rows (issue 4) — nor reads them.

Two companies share one DuckDB file. Another tenant's records must not make a key
ambiguous (G3), raise the next generated number (P5), look like links, or count as
complete extracts (G7); and its rule, plan and findings rows survive this tenant's run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sync_pipeline.model import staging_table
from sync_pipeline.resources import backends
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline_tests.rules.conftest import TENANT

OTHER = "beta"


def _tables_with_tenant(conn) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT table_schema || '.' || table_name FROM information_schema.columns "
        "WHERE column_name = 'tenant' AND table_schema IN ('staging', 'rules', 'sync') "
        "ORDER BY 1"
    ).fetchall()
    return [t for (t,) in rows]


def _other_rows(conn, tables: list[str]) -> dict[str, list[tuple]]:
    return {
        t: conn.execute(f"SELECT * FROM {t} WHERE tenant = ? ORDER BY ALL", [OTHER]).fetchall()
        for t in tables
    }


def _copy_where_it_lives(conn, table: str) -> None:
    """This tenant's rows of a table the lake keeps in its catalog's PostgreSQL (seen in the
    lake through a read-only view) copied as the other tenant's, written where they live."""
    schema, name = table.split(".")
    columns = [
        c
        for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? AND table_catalog = current_database() AND column_name <> 'tenant' "
            "ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
    ]
    listed = ", ".join(columns)
    backends.execute(
        conn,
        f"INSERT INTO {table} (tenant, {listed}) SELECT ?, {listed} FROM {table} WHERE tenant = ?",
        [OTHER, TENANT],
    )


def _strip(plan: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "run_id"} for row in plan]


@pytest.mark.lake
def test_G3_P5_G7_a_tenant_run_neither_reads_nor_writes_another_tenants_rows(rules):
    rules.svenn.customer(1, number="10")
    rules.svenn.project(1, number="100")
    rules.tripletex.project(90, number=None, name="Uten nummer")
    rules.tripletex.customer(70, number="20", name="Lenket")
    rules.svenn.customer(2, number="20", name="Lenket")
    rules.link("customer", 2, 70, {"number": "20", "name": "Lenket", "is_active": True})
    rules.complete_extracts()
    alone = rules.run()
    assert any(r["operation"] == "set_number" for r in alone.plan)

    with SyncDuckDB(database=rules.db).get_connection() as conn:
        # The other company: a copy of everything this tenant has, plus records that would
        # change this tenant's plan if they leaked into it.
        tables = _tables_with_tenant(conn)
        for table in tables:
            if table in backends.CATALOG_TABLES:  # on a lake: a view of the catalog's table
                _copy_where_it_lives(conn, table)
                continue
            conn.execute(
                f"INSERT INTO {table} SELECT * REPLACE ('{OTHER}' AS tenant) FROM {table} "
                "WHERE tenant = ?",
                [TENANT],
            )
        extra = {
            ("svenn", "customer"): {"id": 3, "number": "10", "name": "Dobbel"},  # G3 dup
            ("tripletex", "project"): {"id": 99, "number": "5000", "name": "Høyt"},  # P5
        }
        for (side, entity), values in extra.items():
            conn.execute(
                f"INSERT INTO {staging_table(side, entity)} BY NAME "
                "SELECT ? AS tenant, ? AS id, 1 AS version, false AS deleted, ? AS number, "
                "? AS name, ? AS label",
                [OTHER, values["id"], values["number"], values["name"], values["name"]],
            )
        # An incomplete extract and the customer link gone: G7 must not see either.
        conn.execute(
            "INSERT INTO sync.extracts (tenant, system, entity, mode, complete, started_at) "
            "VALUES (?, 'tripletex', 'customer', 'full', false, ?)",
            [OTHER, datetime(2100, 1, 1, tzinfo=UTC)],
        )
        conn.execute(
            "INSERT INTO sync.links (tenant, entity, svenn_id, tripletex_id, key, origin, state, "
            "base, linked_at) VALUES (?, 'project', 1, 90, '100', 'matched', 'active', ?, now())",
            [OTHER, json.dumps({"number": "100"})],
        )
        before = _other_rows(conn, tables)

    again = rules.run(write=False)

    assert _strip(again.plan) == _strip(alone.plan)
    assert [f | {"run_id": None} for f in again.findings] == [
        f | {"run_id": None} for f in alone.findings
    ]
    with SyncDuckDB(database=rules.db).get_connection() as conn:
        assert _other_rows(conn, tables) == before
