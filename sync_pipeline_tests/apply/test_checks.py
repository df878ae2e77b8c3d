"""The apply checks flag the states they exist for (and stay quiet otherwise)."""

from __future__ import annotations

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
