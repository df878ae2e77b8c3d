"""Raw → staging normalisation and the snapshot bookkeeping, on DuckDB alone (no API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from sync_pipeline.assets.extract.snapshot import (
    ExtractRecord,
    PreviousExtract,
    choose_mode,
    json_rows,
    previous_extract,
    record_failed_extract,
    write_snapshot,
)
from sync_pipeline.assets.extract.tables import LATER_RAW_COLUMNS, RAW_COLUMNS, raw_meta
from sync_pipeline.model import ENTITIES, PLURAL, SIDES
from sync_pipeline.resources.storage import migrate

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn():
    c = duckdb.connect()
    migrate(c)
    yield c
    c.close()


def load(conn, side, entity, records, *, tenant="acme", replace="all", keep_pages=None, pages=None):
    rec = ExtractRecord(tenant, side, entity, "run-1", "full", NOW)
    columns = {"raw_json": pa.array(json_rows(records), pa.string())}
    if side == "tripletex":
        columns["listing"] = pa.array(["all"] * len(records), pa.string())
        columns["page"] = pa.array(pages or [0] * len(records), pa.int32())
    return write_snapshot(conn, rec, pa.table(columns), replace=replace, keep_pages=keep_pages)


def staging(conn, table, tenant="acme"):
    cur = conn.execute(f"SELECT * FROM staging.{table} WHERE tenant = ? ORDER BY id", [tenant])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_raw_tables_of_migration_2_match_the_extracted_columns(conn):
    for side in SIDES:
        for entity in ENTITIES:
            table = f"{side}_{PLURAL[entity]}"
            got = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
            ]
            later = LATER_RAW_COLUMNS.get((side, entity), {})
            first = [c for c in RAW_COLUMNS[(side, entity)] if c not in later]
            assert got == [*raw_meta(side), *first, "raw_json", *later], table


def test_P2_P3_P7_P12_tripletex_projects_normalised(conn):
    load(
        conn,
        "tripletex",
        "project",
        [
            {
                "id": 7,
                "version": 3,
                "number": " 1001 ",
                "name": "Bad",
                "startDate": "2026-01-05",
                "endDate": "",
                "isClosed": True,
                "isInternal": False,
                "mainProject": None,
                "customer": {"id": 0},
                "projectManager": {"id": 4},
                "participants": [
                    {"id": 1, "employee": {"id": 9}},
                    {"id": 2, "employee": {"id": 4}},
                ],
                "changes": [
                    {"timestamp": "2026-03-12T15:09:57+01:00", "changeType": "CREATE"},
                    {"timestamp": "2026-04-01T08:00:00+02:00", "changeType": "UPDATE"},
                ],
            },
            {
                "id": 8,
                "version": 0,
                "number": "",
                "name": "Sub",
                "startDate": "2026-02-01",
                "isClosed": False,
                "isInternal": True,
                "mainProject": {"id": 7},
                "customer": {"id": 5},
                "projectManager": {"id": 4},
                "participants": [],
            },
        ],
    )
    main, sub = staging(conn, "tripletex_projects")
    assert main["number"] == "1001" and main["label"] == "1001 Bad"
    assert main["status"] == "completed" and sub["status"] == "active"  # P7
    assert main["end_date"] is None and str(main["start_date"]) == "2026-01-05"
    assert main["customer_id"] is None and sub["customer_id"] == 5  # {"id": 0} is no ref
    assert main["member_ids"] == [4, 9] and sub["member_ids"] == []  # P12
    assert main["parent_id"] is None and sub["parent_id"] == 7  # P2
    assert main["is_internal"] is False and sub["is_internal"] is True  # P3
    assert main["modified_at"] == datetime(2026, 4, 1, 6, 0, tzinfo=UTC)  # G2: newest change
    assert sub["modified_at"] is None and sub["number"] is None and sub["deleted"] is False


def test_C7_tripletex_customers_number_as_text_and_inactive(conn):
    load(
        conn,
        "tripletex",
        "customer",
        [
            {
                "id": 1,
                "version": 1,
                "customerNumber": 10001,
                "name": "A AS",
                "email": "",
                "phoneNumber": "",
                "organizationNumber": "",
                "isInactive": True,
            },
            {
                "id": 2,
                "version": 1,
                "customerNumber": 10002,
                "name": "B AS",
                "email": "b@example.no",
                "phoneNumber": "22 22 22 22",
                "isInactive": False,
            },
        ],
    )
    a, b = staging(conn, "tripletex_customers")
    assert a["number"] == "10001" and a["is_active"] is False
    assert a["email"] is None and a["phone"] is None and a["organization_number"] is None
    assert b["is_active"] is True and b["email"] == "b@example.no" and b["label"] == "10002 B AS"


def test_E3_tripletex_employees_are_always_active(conn):
    load(
        conn,
        "tripletex",
        "employee",
        [
            {
                "id": 3,
                "version": 2,
                "employeeNumber": " 42",
                "firstName": "Kari",
                "lastName": "",
                "email": "kari@example.no",
                "phoneNumberMobile": "",
                "userType": "NO_ACCESS",
                "department": {"id": 0},
            }
        ],
    )
    (kari,) = staging(conn, "tripletex_employees")
    assert kari["is_active"] is True and kari["number"] == "42" and kari["last_name"] is None
    assert kari["department_id"] is None and kari["user_type"] == "NO_ACCESS"
    assert kari["label"] == "42 Kari"


def test_G3_svenn_keys_trimmed_and_tombstones_marked_deleted(conn):
    load(
        conn,
        "svenn",
        "customer",
        [
            {
                "id": 1,
                "version": 4,
                "customer_number": " 10001 ",
                "name": "A AS",
                "email": None,
                "phone": "",
                "organization_number": None,
                "is_active": False,
                "updated_at": "2026-11-01T10:00:00Z",
                "deleted_at": None,
            },
            {
                "id": 2,
                "version": 2,
                "customer_number": "K-7",
                "name": "B AS",
                "is_active": True,
                "updated_at": "2026-11-02T10:00:00Z",
                "deleted_at": "2026-11-02T10:00:00Z",
            },
        ],
    )
    a, b = staging(conn, "svenn_customers")
    assert a["number"] == "10001" and a["is_active"] is False and a["phone"] is None
    assert a["deleted"] is False and b["deleted"] is True
    assert a["modified_at"] == datetime(2026, 11, 1, 10, tzinfo=UTC)


def test_svenn_projects_and_employees(conn):
    load(
        conn,
        "svenn",
        "project",
        [
            {
                "id": 5,
                "version": 1,
                "display_id": "P.1",
                "name": "Tak",
                "start_date": None,
                "end_date": None,
                "status": "completed",
                "parent_id": 2,
                "customer_id": 3,
                "project_manager_id": 4,
                "member_ids": [9, 4, 9],
                "updated_at": "2026-11-01T10:00:00Z",
                "deleted_at": None,
            }
        ],
    )
    (p,) = staging(conn, "svenn_projects")
    assert p["status"] == "completed" and p["parent_id"] == 2 and p["member_ids"] == [4, 9]
    assert p["start_date"] is None and p["is_internal"] is False and p["label"] == "P.1 Tak"
    load(
        conn,
        "svenn",
        "employee",
        [
            {
                "id": 6,
                "version": 1,
                "employee_number": "7",
                "first_name": "Ola",
                "last_name": "Nordmann",
                "email": None,
                "phone": None,
                "is_active": False,
                "updated_at": "2026-11-01T10:00:00Z",
            }
        ],
    )
    (e,) = staging(conn, "svenn_employees")
    assert e["is_active"] is False and e["label"] == "7 Ola Nordmann" and e["user_type"] is None


def test_a_record_listed_twice_while_paging_appears_once_newest_version(conn):
    load(
        conn,
        "svenn",
        "customer",
        [
            {"id": 1, "version": 1, "customer_number": "1", "name": "Old"},
            {"id": 1, "version": 2, "customer_number": "1", "name": "New"},
        ],
    )
    (row,) = staging(conn, "svenn_customers")
    assert row["name"] == "New" and row["version"] == 2


def test_snapshot_touches_only_its_own_tenant(conn):
    load(conn, "svenn", "customer", [{"id": 1, "version": 1, "name": "A"}], tenant="acme")
    load(conn, "svenn", "customer", [{"id": 1, "version": 1, "name": "B"}], tenant="bygg")
    load(conn, "svenn", "customer", [{"id": 2, "version": 1, "name": "C"}], tenant="acme")
    assert [r["name"] for r in staging(conn, "svenn_customers", "acme")] == ["C"]
    assert [r["name"] for r in staging(conn, "svenn_customers", "bygg")] == ["B"]


def test_incremental_svenn_upsert_keeps_unchanged_records(conn):
    load(
        conn,
        "svenn",
        "customer",
        [{"id": 1, "version": 1, "name": "A"}, {"id": 2, "version": 1, "name": "B"}],
    )
    load(
        conn,
        "svenn",
        "customer",
        [{"id": 2, "version": 2, "name": "B2", "deleted_at": "2026-11-27T10:00:00Z"}],
        replace="ids",
    )
    rows = staging(conn, "svenn_customers")
    assert [(r["id"], r["name"], r["deleted"]) for r in rows] == [(1, "A", False), (2, "B2", True)]


def test_tripletex_pages_answered_304_are_kept_and_others_replaced(conn):
    load(
        conn,
        "tripletex",
        "customer",
        [{"id": i, "version": 1, "name": f"C{i}"} for i in (1, 2, 3, 4)],
        pages=[0, 0, 1, 1],
    )
    # page 0 unchanged (304); page 1 now holds only record 3 with a new name: 4 is gone
    load(
        conn,
        "tripletex",
        "customer",
        [{"id": 3, "version": 2, "name": "C3b"}],
        replace="pages",
        keep_pages=[("all", 0)],
        pages=[1],
    )
    assert [(r["id"], r["name"]) for r in staging(conn, "tripletex_customers")] == [
        (1, "C1"),
        (2, "C2"),
        (3, "C3b"),
    ]


def test_G7_failed_extract_is_recorded_incomplete_and_not_used_as_base(conn):
    load(conn, "svenn", "customer", [{"id": 1, "version": 1, "name": "A"}])
    rec = ExtractRecord(
        "acme",
        "svenn",
        "customer",
        "run-2",
        "incremental",
        NOW,
        requests=3,
        error="Svenn 503 GET /customers: down.",
    )
    record_failed_extract(conn, rec)
    complete, row_count, error = conn.execute(
        "SELECT complete, row_count, error FROM sync.extracts WHERE run_id = 'run-2'"
    ).fetchone()
    assert complete is False and row_count is None and "503" in error
    previous = previous_extract(conn, "acme", "svenn", "customer")
    assert previous is not None and previous.mode == "full" and previous.row_count == 1
    assert [r["name"] for r in staging(conn, "svenn_customers")] == ["A"]


def test_a_failing_write_rolls_back_raw_staging_and_extract_row(conn):
    load(conn, "svenn", "customer", [{"id": 1, "version": 1, "name": "A"}])
    rec = ExtractRecord("acme", "svenn", "customer", "run-3", "full", NOW)
    with pytest.raises(ValueError):
        write_snapshot(conn, rec, pa.table({"raw_json": ["{}"]}), replace="bogus")
    assert [r["name"] for r in staging(conn, "svenn_customers")] == ["A"]
    assert conn.execute("SELECT count(*) FROM raw.svenn_customers").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM sync.extracts WHERE run_id = 'run-3'").fetchone() == (
        0,
    )


def _previous(**kw):
    base = dict(
        mode="full",
        finished_at=NOW,
        row_count=5,
        watermark={"x": 1},
        last_full_at=NOW,
        snapshot_rows=5,
    )
    return PreviousExtract(**{**base, **kw})


def test_mode_is_incremental_only_on_a_trustworthy_recent_snapshot():
    later = NOW + timedelta(hours=1)
    assert choose_mode(_previous(), force_full=False, now=later)[0] == "incremental"
    assert choose_mode(_previous(), force_full=True, now=later)[0] == "full"
    assert choose_mode(None, force_full=False, now=later)[0] == "full"
    assert choose_mode(_previous(watermark=None), force_full=False, now=later)[0] == "full"
    assert choose_mode(_previous(snapshot_rows=4), force_full=False, now=later)[0] == "full"
    day_later = NOW + timedelta(hours=25)
    assert choose_mode(_previous(), force_full=False, now=day_later) == (
        "full",
        "last full extract is older than 24 h",
    )


def test_P13_tripletex_is_offer_staged_and_false_in_svenn(conn):
    load(
        conn,
        "tripletex",
        "project",
        [
            {"id": 7, "version": 1, "number": "T1", "name": "Tilbud", "isOffer": True},
            {"id": 8, "version": 1, "number": "2", "name": "Bad"},
        ],
    )
    rows = conn.execute(
        "SELECT id, is_offer FROM staging.tripletex_projects WHERE tenant = 'acme' ORDER BY id"
    ).fetchall()
    assert rows == [(7, True), (8, False)]
