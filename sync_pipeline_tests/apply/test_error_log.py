"""The error log analysts query (G10): merge, resolution, exports and publishing to Svenn."""

from __future__ import annotations

import duckdb
import pytest

from sync_pipeline.assets.apply.error_log import Finding, insert_findings, merge_error_log
from sync_pipeline.assets.apply.exports import export_parquet
from sync_pipeline.assets.apply.publish import publish_open_errors
from sync_pipeline.assets.apply.runs import upsert_run
from sync_pipeline.model import CODES
from sync_pipeline.resources.storage import SyncDuckDB

TENANT = "acme"


@pytest.fixture
def db(tmp_path) -> SyncDuckDB:
    return SyncDuckDB(database=str(tmp_path / "state.duckdb"))


def _finding(run_id: str, code: str, svenn_id: int, tenant: str = TENANT) -> Finding:
    spec = CODES[code]
    return Finding(
        tenant, run_id, "project", "svenn", svenn_id, None, f"{svenn_id} Prosjekt",
        code, spec.severity, spec.rule_id, spec.message, {"rule_id": spec.rule_id},
    )  # fmt: skip


def _run(db: SyncDuckDB, run_id: str, findings: list, *, complete: bool = True):
    with db.get_connection() as conn:
        insert_findings(conn, findings)
        return merge_error_log(conn, TENANT, run_id, complete=complete)


def _errors(db: SyncDuckDB) -> list[tuple]:
    with db.get_connection() as conn:
        return conn.execute(
            "SELECT tenant, code, svenn_id, first_seen_at, last_seen_at, resolved_at, run_id "
            "FROM sync.errors ORDER BY first_seen_at, code, svenn_id"
        ).fetchall()


@pytest.mark.lake
def test_G10_one_open_row_per_record_moves_last_seen_and_resolves_when_gone(db):
    assert _run(
        db,
        "r1",
        [
            _finding("r1", "PROJECT_MISSING_START_DATE", 1),
            _finding("r1", "PROJECT_MISSING_START_DATE", 1),  # reported twice in one run
            _finding("r1", "PROJECT_INVALID_NUMBER", 2),
        ],
    ) == (2, 0)
    first = {row[2]: row for row in _errors(db)}

    assert _run(db, "r2", [_finding("r2", "PROJECT_MISSING_START_DATE", 1)]) == (0, 1)
    rows = {row[2]: row for row in _errors(db)}
    assert rows[1][3] == first[1][3] and rows[1][4] > first[1][4]  # same row, seen again
    assert rows[1][5] is None and rows[1][6] == "r2"
    assert rows[2][5] is not None  # fixed at the source: resolved, kept as history

    # the error comes back later: a new open row, the old one stays resolved
    assert _run(db, "r3", [_finding("r3", "PROJECT_INVALID_NUMBER", 2), _finding("r3", "PROJECT_MISSING_START_DATE", 1)]) == (1, 0)  # fmt: skip
    assert len(_errors(db)) == 3


def test_G10_a_run_that_could_not_check_everything_resolves_nothing(db):
    _run(db, "r1", [_finding("r1", "PROJECT_MISSING_START_DATE", 1)])
    assert _run(db, "r2", [], complete=False) == (0, 0)
    assert _errors(db)[0][5] is None


@pytest.mark.lake
def test_G10_tenants_never_touch_each_others_errors(db):
    with db.get_connection() as conn:
        insert_findings(conn, [_finding("o1", "PROJECT_MISSING_START_DATE", 1, "other")])
        merge_error_log(conn, "other", "o1", complete=True)
    _run(db, "r1", [])
    assert [(row[0], row[5]) for row in _errors(db)] == [("other", None)]


def test_G10_open_errors_and_runs_are_exported_as_parquet(db, tmp_path):
    _run(db, "r1", [_finding("r1", "PROJECT_MISSING_START_DATE", 1), _finding("r1", "PROJECT_INVALID_NUMBER", 2)])  # fmt: skip
    _run(db, "r2", [_finding("r2", "PROJECT_MISSING_START_DATE", 1)])
    with db.get_connection() as conn:
        upsert_run(conn, TENANT, "r2", outcome="success", counts={"planned": {}})
        paths = export_parquet(conn, TENANT, tmp_path / "exports")

    open_errors = duckdb.sql(
        f"SELECT code, tenant FROM read_parquet('{tmp_path}/exports/open_errors/*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    assert open_errors == [("PROJECT_MISSING_START_DATE", TENANT)]
    runs = duckdb.sql(f"SELECT run_id, outcome FROM read_parquet('{paths[1]}')").fetchall()
    assert runs == [("r2", "success")]


def test_G10_open_errors_are_published_to_svenn_only_when_they_changed(db, svenn_sandbox):
    from sync_pipeline.resources.svenn import SvennClient

    key = svenn_sandbox.new_company()
    svenn = SvennClient(base_url=svenn_sandbox.base_url, api_key=key)
    _run(db, "r1", [_finding("r1", "PROJECT_MISSING_START_DATE", 1), _finding("r1", "PROJECT_INVALID_NUMBER", 2)])  # fmt: skip

    published, _ = publish_open_errors(db.get_connection, TENANT, "r1", svenn)
    assert published
    shown = svenn.get_errors()
    assert sorted(e["code"] for e in shown) == [
        "PROJECT_INVALID_NUMBER",
        "PROJECT_MISSING_START_DATE",
    ]
    assert shown[0]["entity"] == "projects" and shown[0]["message"]

    _run(db, "r2", [_finding("r2", "PROJECT_MISSING_START_DATE", 1), _finding("r2", "PROJECT_INVALID_NUMBER", 2)])  # fmt: skip
    puts = svenn_sandbox.stats(key)["requests"].get("PUT /api/v1/integrations/tripletex/errors")
    assert publish_open_errors(db.get_connection, TENANT, "r2", svenn)[0] is False
    assert (
        svenn_sandbox.stats(key)["requests"].get("PUT /api/v1/integrations/tripletex/errors")
        == puts
    )

    _run(db, "r3", [_finding("r3", "PROJECT_MISSING_START_DATE", 1)])
    assert publish_open_errors(db.get_connection, TENANT, "r3", svenn)[0] is True
    assert [e["code"] for e in svenn.get_errors()] == ["PROJECT_MISSING_START_DATE"]
    svenn.close()
