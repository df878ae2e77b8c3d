"""Records: server-set fields, PATCH, soft delete, change order and cursor paging."""

from __future__ import annotations

import datetime as dt
import itertools

from sync_pipeline.sandbox.svenn.timestamps import parse_rfc3339


def test_create_sets_server_fields_and_defaults(svenn):
    customer = svenn.create("customers", {"name": "Fjord Bygg AS"})
    assert customer["id"] == 1
    assert customer["version"] == 1
    assert customer["created_at"] == customer["updated_at"]
    assert customer["created_at"].endswith("Z")
    assert customer["deleted_at"] is None
    assert customer["is_active"] is True
    assert customer["customer_number"] is None
    project = svenn.create("projects", {"name": "Bad og flis"})
    assert project["status"] == "active"
    assert project["member_ids"] == []
    assert svenn.get(f"/projects/{project['id']}").json() == project


def test_an_integral_number_names_a_record_as_its_integer_does(svenn):
    """JSON and the published JSON Schema count ``7.0`` as the integer 7 (found by
    Schemathesis: a schema-valid ``customer_id: 10.0`` was refused)."""
    customer = svenn.create("customers", {"name": "Fjord Bygg AS"})
    project = svenn.create("projects", {"name": "Bad", "customer_id": float(customer["id"])})
    assert project["customer_id"] == customer["id"] and isinstance(project["customer_id"], int)


def test_server_set_fields_cannot_be_written_by_a_client(svenn):
    """id, version and the timestamps are Svenn's: a body carrying one is refused, not obeyed."""
    stamp = "2020-01-01T00:00:00Z"
    resp = svenn.post("/customers", {"name": "A", "id": 99, "version": 5, "created_at": stamp})
    assert resp.status_code == 422
    assert set(resp.json()["error"]["fields"]) == {"id", "version", "created_at"}
    customer = svenn.create("customers", {"name": "B"})
    for body in ({"version": 7}, {"updated_at": stamp}, {"deleted_at": stamp}):
        resp = svenn.patch(f"/customers/{customer['id']}", body)
        assert resp.status_code == 422 and set(resp.json()["error"]["fields"]) == set(body)
    assert svenn.get(f"/customers/{customer['id']}").json() == customer


def test_patch_changes_only_the_given_fields_and_bumps_version(svenn):
    emp = svenn.create(
        "employees", {"first_name": "Kari", "last_name": "Nordmann", "phone": "4791"}
    )
    resp = svenn.patch(f"/employees/{emp['id']}", {"last_name": None, "email": "kari@firma.no"})
    assert resp.status_code == 200
    after = resp.json()
    assert after["last_name"] is None and after["email"] == "kari@firma.no"
    assert after["first_name"] == "Kari" and after["phone"] == "4791"
    assert after["version"] == 2
    assert parse_rfc3339(after["updated_at"]) > parse_rfc3339(emp["updated_at"])
    assert after["created_at"] == emp["created_at"]


def test_patch_without_a_change_keeps_version_and_updated_at(svenn):
    cust = svenn.create("customers", {"name": "Same", "phone": "1"})
    after = svenn.patch(f"/customers/{cust['id']}", {"name": "Same"}).json()
    assert (after["version"], after["updated_at"]) == (1, cust["updated_at"])


def test_delete_is_soft_and_read_one_then_404s(svenn):
    cust = svenn.create("customers", {"name": "Borte AS"})
    resp = svenn.delete(f"/customers/{cust['id']}")
    assert resp.status_code == 204 and resp.content == b""
    assert svenn.get(f"/customers/{cust['id']}").status_code == 404
    assert svenn.patch(f"/customers/{cust['id']}", {"name": "x"}).status_code == 404
    assert svenn.delete(f"/customers/{cust['id']}").status_code == 404
    assert svenn.list_all("customers") == []
    (tombstone,) = svenn.list_all("customers", include_deleted="true")
    assert tombstone["id"] == cust["id"]
    assert tombstone["version"] == 2
    assert tombstone["deleted_at"] == tombstone["updated_at"]


def test_tombstones_reach_updated_since_readers_only_with_include_deleted(svenn):
    keep = svenn.create("projects", {"name": "Blir"})
    gone = svenn.create("projects", {"name": "Forsvinner"})
    since = svenn.create("projects", {"name": "Markør"})["updated_at"]
    svenn.delete(f"/projects/{gone['id']}")
    svenn.patch(f"/projects/{keep['id']}", {"status": "completed"})

    changed = svenn.list_all("projects", updated_since=since)
    assert [p["id"] for p in changed] == [since_id(svenn, since), keep["id"]]
    with_tombstones = svenn.list_all("projects", updated_since=since, include_deleted="true")
    assert [p["id"] for p in with_tombstones] == [since_id(svenn, since), gone["id"], keep["id"]]
    assert with_tombstones[1]["deleted_at"] is not None


def since_id(svenn, stamp: str) -> int:
    """The record whose updated_at is ``stamp`` (updated_since is inclusive: >=)."""
    (record,) = [p for p in svenn.list_all("projects") if p["updated_at"] == stamp]
    return record["id"]


def test_updated_since_is_inclusive_and_accepts_any_offset(svenn):
    first = svenn.create("customers", {"name": "A"})
    svenn.create("customers", {"name": "B"})
    instant = dt.datetime.fromisoformat(first["updated_at"])
    oslo = instant.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()  # ...+02:00
    assert [c["name"] for c in svenn.list_all("customers", updated_since=oslo)] == ["A", "B"]
    nanos_later = first["updated_at"][:26] + "001Z"  # rounds up to the next µs: excludes A
    assert [c["name"] for c in svenn.list_all("customers", updated_since=nanos_later)] == ["B"]


def test_updated_at_strictly_increases_across_all_writes_of_a_company(svenn):
    stamps = []
    for i in range(60):
        stamps.append(svenn.create("employees", {"first_name": f"E{i}"})["updated_at"])
        stamps.append(svenn.create("customers", {"name": f"C{i}"})["updated_at"])
        stamps.append(svenn.patch(f"/employees/{i + 1}", {"phone": str(i)}).json()["updated_at"])
    micros = [parse_rfc3339(s) for s in stamps]
    assert all(a < b for a, b in itertools.pairwise(micros))
    assert stamps == sorted(stamps)  # the text form orders the same way


def test_lists_are_ordered_by_updated_at_then_id(svenn):
    for i in range(5):
        svenn.create("customers", {"name": f"C{i}"})
    svenn.patch("/customers/2", {"name": "C1 endret"})
    assert [c["id"] for c in svenn.list_all("customers")] == [1, 3, 4, 5, 2]


def test_cursor_paging_with_writes_between_pages_loses_and_repeats_nothing(svenn):
    for i in range(230):
        svenn.create("customers", {"name": f"Kunde {i}", "customer_number": str(i)})
    seen: list[tuple[int, int]] = []
    cursor, page_no = None, 0
    created, deleted = [], set()
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = svenn.get("/customers", params=params).json()
        assert len(page["data"]) <= 50
        seen += [(c["id"], c["version"]) for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        page_no += 1
        # Meanwhile: edits of records not yet read, of records already read, new records, deletes.
        svenn.patch(f"/customers/{200 + page_no}", {"phone": f"9{page_no}"})
        svenn.patch(f"/customers/{page_no}", {"phone": f"8{page_no}"})
        created.append(svenn.create("customers", {"name": f"Ny {page_no}"})["id"])
        svenn.delete(f"/customers/{100 + page_no}")
        deleted.add(100 + page_no)

    assert len(seen) == len(set(seen)), "a record was delivered twice at the same version"
    final = {c["id"]: c["version"] for c in svenn.list_all("customers")}
    latest = {}
    for record_id, version in seen:
        latest[record_id] = max(version, latest.get(record_id, 0))
    for record_id, version in final.items():
        assert latest.get(record_id) == version, f"customer {record_id} missed at version {version}"
    assert set(created) <= set(latest)
    assert page_no >= 4


def test_next_cursor_is_null_exactly_when_nothing_follows(svenn):
    for i in range(4):
        svenn.create("employees", {"first_name": f"E{i}"})
    page = svenn.get("/employees", params={"limit": 4}).json()
    assert len(page["data"]) == 4 and page["next_cursor"] is None
    page = svenn.get("/employees", params={"limit": 3}).json()
    assert page["next_cursor"] is not None
    rest = svenn.get("/employees", params={"limit": 3, "cursor": page["next_cursor"]}).json()
    assert [e["first_name"] for e in rest["data"]] == ["E3"] and rest["next_cursor"] is None


def test_default_limit_is_100_and_max_500(svenn):
    company = svenn.hub.companies[svenn.key]
    company.load("customers", [{"id": i, "name": f"K{i}"} for i in range(1, 602)])
    assert len(svenn.get("/customers").json()["data"]) == 100
    assert len(svenn.get("/customers", params={"limit": 500}).json()["data"]) == 500
    assert svenn.get("/customers", params={"limit": 501}).status_code == 400


def test_subproject_may_reuse_its_parents_number_P2(svenn):
    parent = svenn.create("projects", {"name": "Hovedprosjekt", "display_id": "1001"})
    child = svenn.create(
        "projects", {"name": "Underprosjekt", "display_id": "1001", "parent_id": parent["id"]}
    )
    assert child["parent_id"] == parent["id"] and child["display_id"] == "1001"


def test_companies_are_isolated(svenn):
    other = svenn.other_company()
    mine = svenn.create("customers", {"name": "Min kunde", "customer_number": "10"})
    theirs = other.create("customers", {"name": "Deres kunde", "customer_number": "10"})
    assert theirs["id"] == 1 == mine["id"]  # ids are per company, and so are numbers
    assert [c["name"] for c in svenn.list_all("customers")] == ["Min kunde"]
    assert [c["name"] for c in other.list_all("customers")] == ["Deres kunde"]
    other.delete("/customers/1")
    assert svenn.get("/customers/1").json()["name"] == "Min kunde"
