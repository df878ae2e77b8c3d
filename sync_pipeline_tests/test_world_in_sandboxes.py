"""A generated world loaded into both sandboxes still holds every SYNC-RULES.md case.

Rule tests pick records from ``World.cases`` and run the pipeline against the sandboxes;
that only proves something if each case survives the trip through the real APIs with the
property that makes it that case (a null start date, an internal flag, a blank key, ...).
Each case is checked on the records *as served* — not on the generator's dicts — and the
counterpart on the other side is found by key, the way the sync itself matches.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sync_pipeline.generator import generate_world
from sync_pipeline.generator.world import World
from sync_pipeline.resources.svenn import RESOURCES, SvennClient
from sync_pipeline.resources.tripletex import TripletexClient

pytestmark = pytest.mark.integration

WORLD_SEED = 7  # not the demo seed: the cases must not depend on one lucky draw
VALID_PROJECT_NUMBER = re.compile(r"[0-9A-Za-zæøåÆØÅ.]+")  # P6
INT32_MAX = 2**31 - 1
SINGULAR = {"projects": "project", "customers": "customer", "employees": "employee"}
SVENN_KEY = {"project": "display_id", "customer": "customer_number", "employee": "employee_number"}
TRIPLETEX_KEY = {"project": "number", "customer": "customerNumber", "employee": "employeeNumber"}


def blank(value: Any) -> Any:
    """SYNC-RULES §0: Tripletex "" and Svenn null both mean unset."""
    return None if value in ("", None) else value


def key(value: Any) -> str | None:
    """G3: keys compare as strings after trimming."""
    return blank(str(value).strip()) if value is not None else None


def numeric_customer_number(value: Any) -> bool:
    """C1: digits only and a positive int32."""
    text = key(value)
    return text is not None and text.isdigit() and 0 < int(text) <= INT32_MAX


@dataclass
class Served:
    """Both sides of the world as the APIs return them, keyed by entity then id."""

    svenn: dict[str, dict[int, dict]]  # include_deleted=true
    svenn_live_ids: dict[str, set[int]]  # what a listing without include_deleted returns
    tripletex: dict[str, dict[int, dict]]
    assignable_managers: set[int]  # GET /employee?assignableProjectManagers=true (P10)

    def record(self, side: str, entity: str, local_id: int) -> dict:
        served = (self.svenn if side == "svenn" else self.tripletex)[entity]
        assert local_id in served, f"{side} {entity} {local_id} is not served by the sandbox"
        return served[local_id]

    def live_svenn(self, entity: str) -> list[dict]:
        return [r for r in self.svenn[entity].values() if r["deleted_at"] is None]

    def tripletex_by_key(self, entity: str, value: Any) -> list[dict]:
        wanted = key(value)
        return [
            r for r in self.tripletex[entity].values() if key(r[TRIPLETEX_KEY[entity]]) == wanted
        ]

    def svenn_by_key(self, entity: str, value: Any) -> list[dict]:
        wanted = key(value)
        return [
            r
            for r in self.live_svenn(entity)
            if key(r[SVENN_KEY[entity]]) == wanted and not r.get("parent_id")  # P2: never matched
        ]


def by_id(rows: list[dict]) -> dict[int, dict]:
    return {row["id"]: row for row in rows}


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WORLD_SEED, "demo")


@pytest.fixture(scope="module")
def served(tripletex_sandbox, svenn_sandbox) -> Served:
    options = {"seed": "world", "world_seed": WORLD_SEED, "scale": "demo"}
    tripletex = TripletexClient(
        base_url=tripletex_sandbox.base_url,
        consumer_token=tripletex_sandbox.consumer_token,
        employee_token=tripletex_sandbox.new_company(**options),
        rate_limit_requests=None,
    )
    svenn = SvennClient(
        base_url=svenn_sandbox.base_url, api_key=svenn_sandbox.new_company(**options)
    )
    try:
        customers = [
            *tripletex.list_all(
                "/customer", {"isInactive": False}, TripletexClient.CUSTOMER_FIELDS
            ),
            *tripletex.list_all("/customer", {"isInactive": True}, TripletexClient.CUSTOMER_FIELDS),
        ]
        return Served(
            svenn={SINGULAR[r]: by_id(svenn.list_all(r, include_deleted=True)) for r in RESOURCES},
            svenn_live_ids={
                SINGULAR[r]: {row["id"] for row in svenn.list_all(r)} for r in RESOURCES
            },
            tripletex={
                "customer": by_id(customers),
                "project": by_id(
                    tripletex.list_all("/project", None, TripletexClient.PROJECT_FIELDS)
                ),
                "employee": by_id(
                    tripletex.list_all("/employee", None, TripletexClient.EMPLOYEE_FIELDS)
                ),
            },
            assignable_managers={
                row["id"]
                for row in tripletex.list_all(
                    "/employee", {"assignableProjectManagers": True}, "id"
                )
            },
        )
    finally:
        tripletex.close()
        svenn.close()


# -- what makes each case that case, on the served records ---------------------------------
# Each checker gets (served, side, entity, record as served) and asserts the case's property.
Check = Callable[[Served, str, str, dict], None]


def check_p1(s: Served, side: str, entity: str, r: dict) -> None:
    assert (side, entity) == ("svenn", "project") and r["deleted_at"] is None
    assert r["start_date"] is None


def check_p2(s: Served, side: str, entity: str, r: dict) -> None:
    if side == "svenn":
        assert r["parent_id"] is not None
        parent = s.record("svenn", "project", r["parent_id"])
        assert parent["display_id"] == r["display_id"]  # Svenn lets sub-projects reuse it
    else:
        assert (r["mainProject"] or {}).get("id") in s.tripletex["project"]


def check_p3(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "tripletex" and r["isInternal"] is True
    assert not s.svenn_by_key("project", r["number"]), "a Svenn counterpart would make it P4"


def check_p4(s: Served, side: str, entity: str, r: dict) -> None:
    if side == "svenn":
        matches = s.tripletex_by_key("project", r["display_id"])
    else:
        assert s.svenn_by_key("project", r["number"])
        matches = [r]
    assert [t["isInternal"] for t in matches] == [True]


def check_p5(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "tripletex" and r["number"] == ""


def check_p6(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is None and r["parent_id"] is None
    assert not VALID_PROJECT_NUMBER.fullmatch(r["display_id"] or "")


def check_p6_valid(s: Served, side: str, entity: str, r: dict) -> None:
    number = r["display_id"] if side == "svenn" else r["number"]
    assert VALID_PROJECT_NUMBER.fullmatch(number) and not number.isdigit()
    other = s.tripletex_by_key if side == "svenn" else s.svenn_by_key
    assert len(other("project", number)) == 1


def check_p7(s: Served, side: str, entity: str, r: dict) -> None:
    assert (r["status"] == "completed") if side == "svenn" else (r["isClosed"] is True)


def check_p10(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn"
    if r["project_manager_id"] is None:
        return
    manager = s.record("svenn", "employee", r["project_manager_id"])
    counterparts = s.tripletex_by_key("employee", manager["employee_number"])
    assert counterparts, "the manager should exist in Tripletex, just without manager access"
    assert not {t["id"] for t in counterparts} & s.assignable_managers


def check_p11(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["customer_id"] is not None
    customer = s.record("svenn", "customer", r["customer_id"])
    assert not numeric_customer_number(customer["customer_number"]) or not customer["is_active"]


def check_p12(s: Served, side: str, entity: str, r: dict) -> None:
    if side == "svenn":
        assert r["member_ids"] and set(r["member_ids"]) <= set(s.svenn["employee"])
    else:
        employees = {p["employee"]["id"] for p in r["participants"]}
        assert employees and employees <= set(s.tripletex["employee"])


def check_c1(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is None
    assert not numeric_customer_number(r["customer_number"])


def check_c2(s: Served, side: str, entity: str, r: dict) -> None:
    if side == "svenn":
        assert r["is_active"] is False
        assert not s.tripletex_by_key("customer", r["customer_number"])
    else:
        assert r["isInactive"] is True
        assert not s.svenn_by_key("customer", r["customerNumber"])


def customer_pair(s: Served, side: str, r: dict) -> tuple[dict, dict]:
    if side == "svenn":
        (t,) = s.tripletex_by_key("customer", r["customer_number"])
        return r, t
    (sv,) = s.svenn_by_key("customer", r["customerNumber"])
    return sv, r


def check_c3(s: Served, side: str, entity: str, r: dict) -> None:
    sv, t = customer_pair(s, side, r)
    assert sv["is_active"] is False and t["isInactive"] is False


def check_c5(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["is_active"] and numeric_customer_number(r["customer_number"])
    assert blank(r["email"]) is None
    assert not s.tripletex_by_key("customer", r["customer_number"]), "it must be created"


def check_c7(s: Served, side: str, entity: str, r: dict) -> None:
    sv, t = customer_pair(s, side, r)
    assert sv["is_active"] is True and t["isInactive"] is True


def check_e1(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is None and blank(r["last_name"]) is None


def check_e2(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "tripletex" and r["employeeNumber"] == ""


def check_e3(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is None and r["is_active"] is False


def check_duplicate_key(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is None
    live = [x for x in s.live_svenn(entity) if entity != "project" or x["parent_id"] is None]
    own = key(r[SVENN_KEY[entity]])
    assert own is not None and Counter(key(x[SVENN_KEY[entity]]) for x in live)[own] >= 2


def check_email_match(s: Served, side: str, entity: str, r: dict) -> None:
    assert entity == "employee" and r["email"]
    if side == "svenn":
        others = [
            t
            for t in s.tripletex["employee"].values()
            if (t["email"] or "").lower() == r["email"].lower()
        ]
        pairs = [(r, t) for t in others]
    else:
        others = [
            x for x in s.live_svenn("employee") if (x["email"] or "").lower() == r["email"].lower()
        ]
        pairs = [(x, r) for x in others]
    assert len(pairs) == 1
    sv, t = pairs[0]
    assert sv["email"] != t["email"], "the match must need case-insensitivity"
    assert key(sv["employee_number"]) != key(t["employeeNumber"])
    assert None in (key(sv["employee_number"]), key(t["employeeNumber"]))


def check_trimmed_key(s: Served, side: str, entity: str, r: dict) -> None:
    sv, t = customer_pair(s, side, r)
    assert sv["customer_number"] != sv["customer_number"].strip()
    assert sv["customer_number"].strip() == str(t["customerNumber"])


CANONICAL = {  # Svenn field -> Tripletex field (SYNC-RULES §0), compared after `blank`
    "project": {"name": "name", "start_date": "startDate", "end_date": "endDate"},
    "customer": {
        "name": "name",
        "email": "email",
        "phone": "phoneNumber",
        "organization_number": "organizationNumber",
    },
    "employee": {
        "first_name": "firstName",
        "last_name": "lastName",
        "email": "email",
        "phone": "phoneNumberMobile",
    },
}


def linked_by_key(s: Served, side: str, entity: str, r: dict) -> tuple[dict, dict]:
    if side == "svenn":
        (t,) = s.tripletex_by_key(entity, r[SVENN_KEY[entity]])
        return r, t
    (sv,) = s.svenn_by_key(entity, r[TRIPLETEX_KEY[entity]])
    return sv, r


def differences(entity: str, sv: dict, t: dict) -> dict[str, tuple[Any, Any]]:
    diff = {
        f: (blank(sv[f]), blank(t[tf]))
        for f, tf in CANONICAL[entity].items()
        if blank(sv[f]) != blank(t[tf])
    }
    if entity == "project" and (sv["status"] == "completed") != t["isClosed"]:
        diff["status"] = (sv["status"], t["isClosed"])
    return diff


def check_field_diff(s: Served, side: str, entity: str, r: dict) -> None:
    sv, t = linked_by_key(s, side, entity, r)
    diff = differences(entity, sv, t)
    assert len(diff) == 1 and None not in next(iter(diff.values())), diff


def check_empty_in_tripletex(s: Served, side: str, entity: str, r: dict) -> None:
    sv, t = linked_by_key(s, side, entity, r)
    diff = differences(entity, sv, t)
    assert len(diff) == 1, diff
    ((svenn_value, tripletex_value),) = diff.values()
    assert svenn_value is not None and tripletex_value is None


def check_tombstone(s: Served, side: str, entity: str, r: dict) -> None:
    assert side == "svenn" and r["deleted_at"] is not None
    assert r["id"] not in s.svenn_live_ids[entity], "deleted records must be hidden by default"


CHECKS: dict[str, Check] = {
    "P1": check_p1,
    "P2": check_p2,
    "P3": check_p3,
    "P4": check_p4,
    "P5": check_p5,
    "P6": check_p6,
    "P6_VALID": check_p6_valid,
    "P7": check_p7,
    "P10": check_p10,
    "P11": check_p11,
    "P12": check_p12,
    "C1": check_c1,
    "C2": check_c2,
    "C3": check_c3,
    "C5": check_c5,
    "C7": check_c7,
    "E1": check_e1,
    "E2": check_e2,
    "E3": check_e3,
    "DUPLICATE_KEY": check_duplicate_key,
    "EMAIL_MATCH": check_email_match,
    "TRIMMED_KEY": check_trimmed_key,
    "FIELD_DIFF": check_field_diff,
    "EMPTY_IN_TRIPLETEX": check_empty_in_tripletex,
    "TOMBSTONE": check_tombstone,  # P8, C6
}


def test_world_cases_are_exactly_the_checked_ones(world: World) -> None:
    """A case the generator adds (or drops) must be added here too, so none goes unchecked."""
    assert set(world.cases) == set(CHECKS)


@pytest.mark.parametrize("case_id", list(CHECKS))
def test_world_case_present_in_sandboxes(world: World, served: Served, case_id: str) -> None:
    records = world.cases.get(case_id, [])
    assert records, f"the world has no {case_id} record"
    failures = []
    for side, entity, local_id in records:
        r = served.record(side, entity, local_id)
        expected = world.record(side, entity, local_id)
        name = (
            "name" if entity != "employee" else ("first_name" if side == "svenn" else "firstName")
        )
        assert r[name] == expected[name], f"{side} {entity} {local_id} is another record"
        try:
            CHECKS[case_id](served, side, entity, r)
        except (AssertionError, ValueError) as exc:
            failures.append(f"{side} {entity} {local_id}: {exc or 'check failed'}")
    assert not failures, f"{case_id} records without their property:\n" + "\n".join(failures)


def test_world_pairs_share_their_key_or_email_in_sandboxes(world: World, served: Served) -> None:
    """G3: every declared pair is findable by key (or by e-mail, for EMAIL_MATCH)."""
    email_match = {(e, i) for side, e, i in world.cases["EMAIL_MATCH"] if side == "svenn"}
    for entity, pairs in world.pairs.items():
        for svenn_id, tripletex_id in pairs:
            sv = served.record("svenn", entity, svenn_id)
            t = served.record("tripletex", entity, tripletex_id)
            if (entity, svenn_id) in email_match:
                assert sv["email"].lower() == t["email"].lower()
            else:
                assert key(sv[SVENN_KEY[entity]]) == key(t[TRIPLETEX_KEY[entity]]), (entity, sv, t)
