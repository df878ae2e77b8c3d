"""The apply checks flag the states they exist for (and stay quiet otherwise)."""

from __future__ import annotations

import dagster as dg
import pytest

from sync_pipeline.assets.apply import checks, wal
from sync_pipeline.resources.storage import SyncDuckDB

T, RUN = "acme", "run-1"


@pytest.fixture
def conn(tmp_path):
    with SyncDuckDB(database=str(tmp_path / "state.duckdb")).get_connection() as conn:
        yield conn


def _link(conn, svenn_id: int, tripletex_id: int, state: str = "active") -> None:
    conn.execute(
        "INSERT INTO sync.links VALUES (?, 'customer', ?, ?, 'k', 'matched', ?, NULL, NULL, "
        "NULL, now(), NULL)",
        [T, svenn_id, tripletex_id, state],
    )


def test_G5_an_id_in_two_active_links_is_flagged(conn):
    _link(conn, 1, 10)
    _link(conn, 2, 20)
    _link(conn, 2, 21, state="detached")  # history does not count
    assert checks.ids_in_two_active_links(conn, T) == []
    _link(conn, 1, 11)
    assert checks.ids_in_two_active_links(conn, T) == [("customer", "svenn", 1, 2)]


def test_G4_a_create_without_link_is_flagged(conn):
    intent = wal.Intent(1, "customer", "tripletex", "create", 5, None, "501", None, {})
    wal.record_intents(conn, T, RUN, [intent])
    wal.record_outcomes(conn, T, RUN, [wal.Outcome(1, "done", result_id=50)])
    assert checks.creates_without_link(conn, T, RUN) == [("customer", "tripletex", 1, 50)]
    _link(conn, 5, 50)
    assert checks.creates_without_link(conn, T, RUN) == []


def test_G10_plan_rows_neither_applied_nor_explained_are_counted(conn):
    for seq, svenn_id in ((1, 5), (2, 6), (3, 7)):
        conn.execute(
            "INSERT INTO sync.plan (tenant, run_id, seq, entity, target, operation, svenn_id, "
            "apply, planned_at) VALUES (?, ?, ?, 'customer', 'tripletex', 'create', ?, true, now())",
            [T, RUN, seq, svenn_id],
        )
    intents = [
        wal.Intent(seq, "customer", "tripletex", "create", sid, None, None, None, {})
        for seq, sid in ((1, 5), (2, 6))
    ]
    wal.record_intents(conn, T, RUN, intents)
    wal.record_outcomes(conn, T, RUN, [wal.Outcome(1, "done", 9), wal.Outcome(2, "failed")])

    assert checks.plan_accounting(conn, T, RUN) == {
        "never_attempted": 1,
        "failed_without_finding": 1,
        "done": 1,
        "rows_to_apply": 3,
    }


def test_G10_open_errors_over_the_threshold_warn_without_blocking(tmp_path, monkeypatch):
    db = SyncDuckDB(database=str(tmp_path / "errors.duckdb"))
    with db.get_connection() as conn:
        for tenant, severity, record in (
            (T, "error", 1),
            (T, "error", 2),
            (T, "warning", 3),  # warnings and info do not count
            ("other", "error", 4),  # nor do other tenants' errors
        ):
            conn.execute(
                "INSERT INTO sync.errors VALUES (?, 'PROJECT_MISSING_START_DATE', ?, 'project', "
                "?, NULL, 'P', 'melding', NULL, now(), now(), NULL, ?)",
                [tenant, severity, record, RUN],
            )
    monkeypatch.setenv("SYNC_ERROR_THRESHOLD", "2")
    with db.get_connection() as conn:
        at_threshold = checks.open_errors_under_threshold(conn, T)
    monkeypatch.setenv("SYNC_ERROR_THRESHOLD", "1")
    with db.get_connection() as conn:
        over = checks.open_errors_under_threshold(conn, T)

    assert at_threshold.passed and at_threshold.metadata["open_errors"].value == 2
    assert not over.passed and over.severity == dg.AssetCheckSeverity.WARN
    assert over.metadata["threshold"].value == 1
    assert [spec.blocking for spec in checks.ERRORS_CHECKS] == [False]
