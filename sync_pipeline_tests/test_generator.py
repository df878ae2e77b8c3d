"""The world generator: matched Svenn/Tripletex data with every SYNC-RULES case in it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from sync_pipeline.generator import DEMO_SEED, SCALES, World, generate_world
from sync_pipeline.generator import norwegian as no

INT32_MAX = 2**31 - 1
VALID_PROJECT_NUMBER = re.compile(r"^[0-9A-Za-zÆØÅæøå.]+$")  # P6
EMAIL = re.compile(r"^[a-zA-Z0-9.]+@[a-z0-9]+(\.[a-z0-9]+)+$")
MOBILE = re.compile(r"^\+47 [49]\d{7}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

SVENN_FIELDS = {
    "employees": {
        "id", "employee_number", "first_name", "last_name", "email", "phone", "is_active",
    },
    "customers": {
        "id", "customer_number", "name", "email", "phone", "organization_number", "is_active",
    },
    "projects": {
        "id", "display_id", "name", "description", "start_date", "end_date", "status",
        "parent_id", "customer_id", "project_manager_id", "member_ids",
    },
}  # fmt: skip
TRIPLETEX_FIELDS = {
    "departments": {"id", "name", "departmentNumber"},
    "employees": {
        "id", "firstName", "lastName", "employeeNumber", "email", "phoneNumberMobile",
        "userType", "department",
    },
    "customers": {
        "id", "customerNumber", "name", "email", "invoiceEmail", "phoneNumber",
        "organizationNumber", "isInactive", "invoiceSendMethod", "postalAddress",
    },
    "projects": {
        "id", "number", "name", "description", "startDate", "endDate", "isClosed", "isInternal",
        "customer", "projectManager", "mainProject", "department", "participants",
    },
}  # fmt: skip

RULE_CASES = [
    "P1",
    "P2",
    "P3",
    "P4",
    "P5",
    "P6",
    "P6_VALID",
    "P7",
    "P10",
    "P11",
    "P12",
    "C1",
    "C2",
    "C3",
    "C5",
    "C7",
    "E1",
    "E2",
    "E3",
    "DUPLICATE_KEY",
    "EMAIL_MATCH",
    "TRIMMED_KEY",
    "FIELD_DIFF",
    "EMPTY_IN_TRIPLETEX",
    "TOMBSTONE",
]


@pytest.fixture(scope="module")
def demo() -> World:
    return generate_world()


@pytest.fixture(
    scope="module",
    params=[(DEMO_SEED, "demo"), (7, "demo"), (99, 0.0001)],
    ids=["demo", "seed7", "minimum"],
)
def world(request) -> World:
    """Worlds the invariants must hold for: demo, another seed, and the smallest scale."""
    seed, scale = request.param
    return generate_world(seed, scale)


@pytest.fixture(scope="module")
def small() -> World:
    return generate_world(DEMO_SEED, "small")


@pytest.fixture(scope="module")
def large() -> World:
    return generate_world(DEMO_SEED, "large")


# -- helpers: the canonical view of SYNC-RULES §0 -------------------------------------------


def live(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("deleted")]


def blank(value):
    """Tripletex says "" where Svenn says null; both mean unset (SYNC-RULES §0)."""
    return None if value == "" else value


def is_numeric_customer_key(raw: str | None) -> bool:
    """C1: digits only and a positive int32, after trimming (G3)."""
    key = (raw or "").strip()
    return key.isascii() and key.isdigit() and 0 < int(key) <= INT32_MAX


def links(world: World, entity: str) -> tuple[dict[int, int], dict[int, int]]:
    pairs = world.pairs[entity]
    return dict(pairs), {t: s for s, t in pairs}


def canonical(world: World, side: str, entity: str, record: dict) -> dict:
    """Canonical fields with references translated to the Svenn ids of their pairs."""
    if side == "svenn":
        if entity == "employee":
            return {
                "number": (record["employee_number"] or "").strip() or None,
                "first_name": record["first_name"],
                "last_name": record["last_name"],
                "email": record["email"],
                "phone": record["phone"],
            }
        if entity == "customer":
            return {
                "number": (record["customer_number"] or "").strip() or None,
                "name": record["name"],
                "email": record["email"],
                "phone": record["phone"],
                "organization_number": record["organization_number"],
                "is_active": record["is_active"],
            }
        return {
            "number": record["display_id"],
            "name": record["name"],
            "start_date": record["start_date"],
            "end_date": record["end_date"],
            "status": record["status"],
            "customer": ("svenn", record["customer_id"]),
            "manager": ("svenn", record["project_manager_id"]),
            "members": {("svenn", m) for m in record["member_ids"]},
        }
    if entity == "employee":
        return {
            "number": blank(record["employeeNumber"]),
            "first_name": record["firstName"],
            "last_name": blank(record["lastName"]),
            "email": blank(record["email"]),
            "phone": blank(record["phoneNumberMobile"]),
        }
    if entity == "customer":
        return {
            "number": str(record["customerNumber"]),
            "name": record["name"],
            "email": blank(record["email"]),
            "phone": blank(record["phoneNumber"]),
            "organization_number": blank(record["organizationNumber"]),
            "is_active": not record["isInactive"],
        }
    _, employees = links(world, "employee")
    _, customers = links(world, "customer")

    def through(mapping: dict[int, int], ref: dict | None) -> tuple[str, int | None]:
        if ref is None:
            return ("svenn", None)
        return ("svenn", mapping[ref["id"]]) if ref["id"] in mapping else ("tx", ref["id"])

    return {
        "number": blank(record["number"]),
        "name": record["name"],
        "start_date": record["startDate"],
        "end_date": record["endDate"],
        "status": "completed" if record["isClosed"] else "active",
        "customer": through(customers, record["customer"]),
        "manager": through(employees, record["projectManager"]),
        "members": {through(employees, p["employee"]) for p in record["participants"]},
    }


def differing_fields(world: World, entity: str, svenn_id: int, tripletex_id: int) -> set[str]:
    s = canonical(world, "svenn", entity, world.record("svenn", entity, svenn_id))
    t = canonical(world, "tripletex", entity, world.record("tripletex", entity, tripletex_id))
    return {name for name in s if s[name] != t[name]}


def case_records(world: World, rule: str, side: str | None = None, entity: str | None = None):
    for s, e, local_id in world.cases[rule]:
        if (side is None or s == side) and (entity is None or e == entity):
            yield world.record(s, e, local_id)


# -- determinism and shape ------------------------------------------------------------------


def test_same_seed_gives_the_identical_world(demo):
    again = generate_world(DEMO_SEED, "demo")
    assert again == demo


def test_world_does_not_depend_on_the_process_hash_seed(demo):
    """The sandboxes generate in their own processes: string hashing must not leak in."""
    script = "from sync_pipeline.generator.__main__ import main; main(['--seed', '2026'])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, check=True, text=True
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(dataclasses.asdict(demo)))


def test_different_seed_gives_a_different_world(demo):
    other = generate_world(DEMO_SEED + 1, "demo")
    assert other.svenn != demo.svenn
    assert other.tripletex != demo.tripletex
    assert other.company != demo.company


def test_records_have_exactly_the_api_fields(world):
    for name, fields in SVENN_FIELDS.items():
        for record in world.svenn[name]:
            extra = {"deleted"} if record.get("deleted") else set()
            assert set(record) == fields | extra, (name, record)
            if extra:
                assert record["deleted"] is True
    for name, fields in TRIPLETEX_FIELDS.items():
        assert world.tripletex[name], name
        for record in world.tripletex[name]:
            assert set(record) == fields, (name, record)


def test_local_ids_are_contiguous_from_one(world):
    for lists in (world.svenn, world.tripletex):
        for name, records in lists.items():
            assert [r["id"] for r in records] == list(range(1, len(records) + 1)), name


def test_tripletex_unset_strings_are_empty_strings_never_null(world):
    string_fields = {
        "employees": ("firstName", "lastName", "employeeNumber", "email", "phoneNumberMobile"),
        "customers": ("name", "email", "invoiceEmail", "phoneNumber", "organizationNumber"),
        "projects": ("number", "name", "description", "startDate"),
    }
    for name, fields in string_fields.items():
        for record in world.tripletex[name]:
            for f in fields:
                assert isinstance(record[f], str), (name, f, record)


def test_company_has_an_as_name_and_a_valid_org_number(world):
    assert world.company["name"].endswith(" AS")
    assert no.is_valid_organization_number(world.company["organization_number"])


# -- every case present, each with the property that makes it that case ---------------------


@pytest.mark.parametrize("rule", RULE_CASES)
def test_every_case_is_present(world, rule):
    assert len(world.cases.get(rule, [])) >= 1, f"no {rule} case"


def test_P1_svenn_projects_without_start_date(world):
    records = list(case_records(world, "P1", "svenn", "project"))
    assert len(records) >= 3
    assert all(r["start_date"] is None and not r.get("deleted") for r in records)


def test_P2_subprojects_on_both_sides(world):
    svenn = list(case_records(world, "P2", "svenn", "project"))
    tripletex = list(case_records(world, "P2", "tripletex", "project"))
    assert len(svenn) >= 3 and len(tripletex) >= 3
    for r in svenn:
        parent = world.record("svenn", "project", r["parent_id"])
        assert r["display_id"] == parent["display_id"]  # Svenn reuses the parent's number
    for r in tripletex:
        assert r["mainProject"] is not None and r["number"]


def test_P3_internal_tripletex_projects_have_no_svenn_counterpart(world):
    records = list(case_records(world, "P3", "tripletex", "project"))
    assert len(records) >= 3
    svenn_numbers = {(p["display_id"] or "").strip() for p in world.svenn["projects"]}
    for r in records:
        assert r["isInternal"] and r["customer"] is None
        assert r["number"] not in svenn_numbers


def test_P4_svenn_project_shares_number_with_an_internal_tripletex_project(world):
    _, tripletex_to_svenn = links(world, "project")
    tripletex = list(case_records(world, "P4", "tripletex", "project"))
    assert tripletex
    for t in tripletex:
        assert t["isInternal"]
        s = world.record("svenn", "project", tripletex_to_svenn[t["id"]])
        assert s["display_id"] == t["number"] and not s.get("deleted")


def test_P5_tripletex_projects_without_number(world):
    records = list(case_records(world, "P5", "tripletex", "project"))
    assert len(records) >= 3 and all(r["number"] == "" for r in records)


def test_P6_invalid_and_valid_project_numbers(world):
    invalid = [r["display_id"] for r in case_records(world, "P6", "svenn", "project")]
    assert len(invalid) >= 3
    assert not any(VALID_PROJECT_NUMBER.match(n.strip()) for n in invalid)
    valid = [r["display_id"] for r in case_records(world, "P6_VALID", "svenn", "project")]
    assert valid and all(VALID_PROJECT_NUMBER.match(n) and not n.isdigit() for n in valid)


def test_P7_completed_and_closed_projects(world):
    assert all(r["status"] == "completed" for r in case_records(world, "P7", "svenn"))
    assert all(r["isClosed"] for r in case_records(world, "P7", "tripletex"))
    assert {side for side, _, _ in world.cases["P7"]} == {"svenn", "tripletex"}
    statuses = Counter(
        (
            world.record("svenn", "project", s)["status"],
            world.record("tripletex", "project", t)["isClosed"],
        )
        for s, t in world.pairs["project"]
    )
    assert statuses[("completed", True)] >= 1 and statuses[("active", False)] >= 1


def test_P10_svenn_projects_whose_manager_cannot_manage_in_tripletex(world):
    svenn_to_tripletex, _ = links(world, "employee")
    for r in case_records(world, "P10", "svenn", "project"):
        manager = r["project_manager_id"]
        if manager is not None:
            counterpart = world.record("tripletex", "employee", svenn_to_tripletex[manager])
            assert counterpart["userType"] == "NO_ACCESS"


def test_P11_svenn_projects_whose_customer_is_not_synced(world):
    svenn_to_tripletex, _ = links(world, "customer")
    records = list(case_records(world, "P11", "svenn", "project"))
    assert len(records) >= 3
    non_numeric = 0
    for r in records:
        customer = world.record("svenn", "customer", r["customer_id"])
        numeric = is_numeric_customer_key(customer["customer_number"])
        non_numeric += not numeric
        assert not numeric or not customer["is_active"]
        assert customer["id"] not in svenn_to_tripletex
    assert non_numeric >= 3


def test_P12_members_and_participants(world):
    assert all(r["member_ids"] for r in case_records(world, "P12", "svenn"))
    assert all(r["participants"] for r in case_records(world, "P12", "tripletex"))
    # A Tripletex-only project brings participants that exist in Svenn (P12/E5).
    _, tripletex_to_svenn = links(world, "employee")
    linked_projects = {t for _, t in world.pairs["project"]}
    assert any(
        p["employee"]["id"] in tripletex_to_svenn
        for r in case_records(world, "P12", "tripletex")
        if r["id"] not in linked_projects and r["number"] and not r["isInternal"]
        for p in r["participants"]
    )


def test_C1_svenn_customers_with_non_numeric_numbers(world):
    numbers = [r["customer_number"] for r in case_records(world, "C1", "svenn", "customer")]
    assert len(numbers) >= 5
    assert not any(is_numeric_customer_key(n) for n in numbers)
    assert {"K-100", "abc"} <= set(numbers)


def test_C2_inactive_customers_on_both_sides(world):
    svenn_to_tripletex, tripletex_to_svenn = links(world, "customer")
    svenn = list(case_records(world, "C2", "svenn", "customer"))
    tripletex = list(case_records(world, "C2", "tripletex", "customer"))
    assert len(svenn) >= 3 and len(tripletex) >= 3
    assert all(not r["is_active"] and r["id"] not in svenn_to_tripletex for r in svenn)
    assert all(r["isInactive"] and r["id"] not in tripletex_to_svenn for r in tripletex)


@pytest.mark.parametrize(("rule", "svenn_active"), [("C3", False), ("C7", True)])
def test_C3_C7_linked_customers_active_on_one_side_only(world, rule, svenn_active):
    svenn_to_tripletex, _ = links(world, "customer")
    for s in case_records(world, rule, "svenn", "customer"):
        t = world.record("tripletex", "customer", svenn_to_tripletex[s["id"]])
        assert s["is_active"] is svenn_active and t["isInactive"] is svenn_active


def test_C5_svenn_customers_without_email_to_be_created(world):
    svenn_to_tripletex, _ = links(world, "customer")
    records = list(case_records(world, "C5", "svenn", "customer"))
    assert len(records) >= 3
    for r in records:
        assert r["email"] is None and r["is_active"]
        assert is_numeric_customer_key(r["customer_number"])
        assert r["id"] not in svenn_to_tripletex


def test_E1_svenn_employees_without_surname(world):
    records = list(case_records(world, "E1", "svenn", "employee"))
    assert len(records) >= 3 and all(r["last_name"] is None for r in records)


def test_E2_tripletex_employees_without_number(world):
    records = list(case_records(world, "E2", "tripletex", "employee"))
    assert len(records) >= 3 and all(r["employeeNumber"] == "" for r in records)


def test_E3_inactive_svenn_employees(world):
    records = list(case_records(world, "E3", "svenn", "employee"))
    assert len(records) >= 3 and all(not r["is_active"] for r in records)
    svenn_to_tripletex, _ = links(world, "employee")
    assert any(r["id"] in svenn_to_tripletex for r in records)  # left, still in Tripletex
    assert any(r["id"] not in svenn_to_tripletex for r in records)


def test_G3_email_match_pairs_match_only_by_email(world):
    svenn_to_tripletex, _ = links(world, "employee")
    svenn = list(case_records(world, "EMAIL_MATCH", "svenn", "employee"))
    assert len(svenn) >= 3
    tripletex_numbers = Counter(e["employeeNumber"] for e in world.tripletex["employees"])
    for s in svenn:
        t = world.record("tripletex", "employee", svenn_to_tripletex[s["id"]])
        assert s["email"].lower() == t["email"].lower() and s["email"] != t["email"]
        key = (s["employee_number"] or "").strip()
        assert key != t["employeeNumber"]
        assert not key or tripletex_numbers[key] == 0  # no key match anywhere
    assert any(s["employee_number"] is None for s in svenn)


def test_G3_duplicate_keys_collide_after_trimming_among_live_svenn_records(world):
    by_entity: dict[str, list[dict]] = {}
    for side, entity, local_id in world.cases["DUPLICATE_KEY"]:
        assert side == "svenn"
        by_entity.setdefault(entity, []).append(world.record(side, entity, local_id))
    assert {"customer", "employee", "project"} <= set(by_entity)
    key_field = {"customer": "customer_number", "employee": "employee_number"}
    key_field["project"] = "display_id"
    for entity, records in by_entity.items():
        everyone = Counter(
            (r[key_field[entity]] or "").strip()
            for r in live(world.svenn[f"{entity}s"])
            if entity != "project" or r["parent_id"] is None
        )
        svenn_linked, _ = links(world, entity)
        for r in records:
            assert not r.get("deleted") and r["id"] not in svenn_linked
            assert everyone[r[key_field[entity]].strip()] >= 2
    raw = [r["customer_number"] for r in by_entity["customer"]]
    assert any(n != n.strip() for n in raw)  # e.g. " 1234" next to "1234"


def test_G3_trimmed_customer_keys_still_pair(world):
    svenn_to_tripletex, _ = links(world, "customer")
    for s in case_records(world, "TRIMMED_KEY", "svenn", "customer"):
        t = world.record("tripletex", "customer", svenn_to_tripletex[s["id"]])
        assert s["customer_number"] != s["customer_number"].strip()
        assert int(s["customer_number"]) == t["customerNumber"]


@pytest.mark.parametrize("rule", ["FIELD_DIFF", "EMPTY_IN_TRIPLETEX"])
def test_G3_differing_pairs_differ_in_exactly_one_canonical_field(world, rule):
    entities = set()
    for entity in ("employee", "customer", "project"):
        svenn_to_tripletex, _ = links(world, entity)
        for s in case_records(world, rule, "svenn", entity):
            entities.add(entity)
            t_id = svenn_to_tripletex[s["id"]]
            (name,) = differing_fields(world, entity, s["id"], t_id)
            if rule == "EMPTY_IN_TRIPLETEX":
                t = world.record("tripletex", entity, t_id)
                assert canonical(world, "tripletex", entity, t)[name] is None
                assert canonical(world, "svenn", entity, s)[name] is not None
    assert entities == {"employee", "customer", "project"}


def test_tombstones_are_exactly_the_deleted_svenn_records(world):
    listed = {(e, i) for side, e, i in world.cases["TOMBSTONE"] if side == "svenn"}
    deleted = {
        (name[:-1], r["id"]) for name, rs in world.svenn.items() for r in rs if r.get("deleted")
    }
    assert listed == deleted
    assert {e for e, _ in listed} == {"customer", "employee", "project"}
    svenn_to_tripletex, _ = links(world, "customer")
    assert any(i in svenn_to_tripletex for e, i in listed if e == "customer")  # C6


# -- referential integrity ------------------------------------------------------------------


def test_svenn_references_point_to_live_records(world):
    live_ids = {name: {r["id"] for r in live(rs)} for name, rs in world.svenn.items()}
    top_level = {r["id"] for r in live(world.svenn["projects"]) if r["parent_id"] is None}
    for p in live(world.svenn["projects"]):
        if p["parent_id"] is not None:
            assert p["parent_id"] in top_level, p
        if p["customer_id"] is not None:
            assert p["customer_id"] in live_ids["customers"], p
        if p["project_manager_id"] is not None:
            assert p["project_manager_id"] in live_ids["employees"], p
        assert set(p["member_ids"]) <= live_ids["employees"], p
        assert len(set(p["member_ids"])) == len(p["member_ids"])


def test_tripletex_references_exist_and_managers_may_manage(world):
    t = world.tripletex
    ids = {name: {r["id"] for r in rs} for name, rs in t.items()}
    user_type = {e["id"]: e["userType"] for e in t["employees"]}
    for e in t["employees"]:
        assert e["department"]["id"] in ids["departments"]
    for p in t["projects"]:
        assert p["customer"] is None or p["customer"]["id"] in ids["customers"]
        assert p["department"] is None or p["department"]["id"] in ids["departments"]
        assert p["mainProject"] is None or p["mainProject"]["id"] in ids["projects"]
        assert user_type[p["projectManager"]["id"]] in ("EXTENDED", "STANDARD")
        participants = [q["employee"]["id"] for q in p["participants"]]
        assert set(participants) <= ids["employees"] and len(set(participants)) == len(participants)
        assert isinstance(p["startDate"], str) and ISO_DATE.match(p["startDate"])


def test_paired_projects_refer_to_paired_customers_and_employees(world):
    for s_id, t_id in world.pairs["project"]:
        s = canonical(world, "svenn", "project", world.record("svenn", "project", s_id))
        t = canonical(world, "tripletex", "project", world.record("tripletex", "project", t_id))
        assert (s["customer"], s["manager"], s["members"]) == (
            t["customer"],
            t["manager"],
            t["members"],
        )


def test_project_dates_end_never_before_start(world):
    for p in world.svenn["projects"]:
        for d in (p["start_date"], p["end_date"]):
            assert d is None or ISO_DATE.match(d)
        if p["start_date"] and p["end_date"]:
            assert p["end_date"] >= p["start_date"]
    for p in world.tripletex["projects"]:
        assert p["endDate"] is None or p["endDate"] >= p["startDate"]


def test_every_pair_joins_existing_records_once(world):
    for entity in ("employee", "customer", "project"):
        pairs = world.pairs[entity]
        assert len({s for s, _ in pairs}) == len(pairs) == len({t for _, t in pairs})
        for s, t in pairs:
            world.record("svenn", entity, s)
            world.record("tripletex", entity, t)


# -- uniqueness rules the APIs enforce ------------------------------------------------------


def test_svenn_live_numbers_are_unique_as_the_api_enforces(world):
    for name, key in (("customers", "customer_number"), ("employees", "employee_number")):
        numbers = [r[key] for r in live(world.svenn[name]) if r[key] is not None]
        assert len(numbers) == len(set(numbers)), name


def test_svenn_trimmed_keys_only_collide_in_duplicate_key_cases(world):
    duplicates = {(e, i) for _, e, i in world.cases["DUPLICATE_KEY"]}
    for entity, key in (("customer", "customer_number"), ("employee", "employee_number")):
        keys = Counter(
            r[key].strip()
            for r in live(world.svenn[f"{entity}s"])
            if r[key] is not None and (entity, r["id"]) not in duplicates
        )
        assert max(keys.values()) == 1, entity


def test_tripletex_keys_and_user_emails_are_unique(world):
    t = world.tripletex
    numbers = [p["number"] for p in t["projects"] if p["number"]]
    assert len(numbers) == len(set(numbers))
    customer_numbers = [c["customerNumber"] for c in t["customers"]]
    assert len(customer_numbers) == len(set(customer_numbers))
    assert all(isinstance(n, int) and 0 < n <= INT32_MAX for n in customer_numbers)
    users = [e for e in t["employees"] if e["userType"] != "NO_ACCESS"]
    assert all(e["email"] for e in users)
    emails = [e["email"].lower() for e in users]
    assert len(emails) == len(set(emails))
    assert any(e["userType"] == "NO_ACCESS" for e in t["employees"])
    assert any(e["userType"] == "NO_ACCESS" and not e["email"] for e in t["employees"])


def test_tripletex_employee_1_is_the_token_owner(world):
    owner = world.tripletex["employees"][0]
    assert owner["id"] == 1 and owner["userType"] == "EXTENDED"
    assert owner["email"] and owner["employeeNumber"]


def test_customers_without_email_are_invoiced_on_paper(world):
    for c in world.tripletex["customers"]:
        assert c["invoiceEmail"] == c["email"]
        if not c["email"]:
            assert c["invoiceSendMethod"] != "EMAIL"
        address = c["postalAddress"]
        assert re.fullmatch(r"\d{4}", address["postalCode"]) and address["city"]


# -- Norwegian data -------------------------------------------------------------------------


def test_every_org_number_has_a_valid_mod11_check_digit(world):
    numbers = [world.company["organization_number"]]
    numbers += [c["organization_number"] for c in world.svenn["customers"]]
    numbers += [c["organizationNumber"] for c in world.tripletex["customers"]]
    numbers = [n for n in numbers if n]
    assert len(numbers) > 10
    assert all(no.is_valid_organization_number(n) for n in numbers)


def test_mod11_accepts_real_org_numbers_and_rejects_bad_ones():
    assert no.is_valid_organization_number("923609016")  # Equinor ASA
    assert no.is_valid_organization_number("984851006")  # DNB Bank ASA
    assert not no.is_valid_organization_number("923609017")
    assert not no.is_valid_organization_number("92360901")
    # 6·2 = 12, remainder 1: check digit would be 10, so no valid number starts like this.
    assert no.organization_number_check_digit("00000006") is None


def test_emails_are_ascii_and_well_formed(world):
    emails = [r["email"] for rs in world.svenn.values() for r in rs if r.get("email")]
    emails += [r["email"] for r in world.tripletex["employees"] if r["email"]]
    emails += [r["email"] for r in world.tripletex["customers"] if r["email"]]
    assert emails
    for email in emails:
        assert email.isascii() and EMAIL.match(email), email


def test_phones_are_norwegian_mobiles(world):
    phones = [r["phone"] for rs in ("employees", "customers") for r in world.svenn[rs]]
    phones += [e["phoneNumberMobile"] for e in world.tripletex["employees"]]
    phones += [c["phoneNumber"] for c in world.tripletex["customers"]]
    assert all(MOBILE.match(p) for p in phones if p)


def test_names_look_norwegian(demo):
    customer_names = [c["name"] for c in demo.svenn["customers"]]
    assert any(n.endswith(" AS") for n in customer_names)
    assert any(re.search(r"[æøåÆØÅ]", n) for n in customer_names)
    assert no.mail_local_part("Bjørn", "Sæther") == "bjorn.saether"
    assert no.mail_local_part("Åse", "Årdal") == "aase.aardal"


# -- sizes and shares -----------------------------------------------------------------------


def union_sizes(world: World) -> dict[str, int]:
    return {
        f"{e}s": len(world.svenn[f"{e}s"]) + len(world.tripletex[f"{e}s"]) - len(world.pairs[e])
        for e in ("employee", "customer", "project")
    }


def test_matched_world_shares(small):
    """~75 % equal on both sides, ~5 % differing in one field, the rest on one side."""
    union = union_sizes(small)
    assert union == pytest.approx(SCALES["small"], rel=0.02)
    for entity in ("employee", "customer", "project"):
        differing = [differing_fields(small, entity, s, t) for s, t in small.pairs[entity]]
        equal = sum(not d for d in differing)
        one_field = sum(len(d) == 1 for d in differing)
        total = union[f"{entity}s"]
        assert 0.70 <= equal / total <= 0.80, entity
        assert 0.03 <= one_field / total <= 0.08, entity
        assert 0.12 <= (total - len(differing)) / total <= 0.27, entity


def test_large_preset_sizes(large):
    assert union_sizes(large) == pytest.approx(SCALES["large"], rel=0.01)
    assert SCALES["large"] == {"customers": 50_000, "projects": 9_000, "employees": 2_000}


def test_float_scale_multiplies_large_and_never_drops_a_case():
    tenth = union_sizes(generate_world(1, 0.1))
    assert tenth == pytest.approx({"customers": 5_000, "projects": 900, "employees": 200}, rel=0.02)
    tiny = generate_world(1, 1e-9)
    assert set(RULE_CASES) <= set(tiny.cases)


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="unknown scale"):
        generate_world(scale="huge")
    with pytest.raises(ValueError, match="positive"):
        generate_world(scale=0)
