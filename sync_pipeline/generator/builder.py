"""Collects the records of both sides while a world is built, then numbers them.

Entity builders refer to other records by the record dict itself (not by id), so records
can be created in any order; `finish` shuffles each list (so special cases do not all sit
at the lowest ids), assigns contiguous local ids from 1 and rewrites every reference into
the id form each API uses.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]

SVENN = "svenn"
TRIPLETEX = "tripletex"
PLURAL = {
    "employee": "employees",
    "customer": "customers",
    "project": "projects",
    "department": "departments",
}


class WorldBuilder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.svenn: dict[str, list[Record]] = {"employees": [], "customers": [], "projects": []}
        self.tripletex: dict[str, list[Record]] = {
            "departments": [],
            "employees": [],
            "customers": [],
            "projects": [],
        }
        self._cases: list[tuple[str, str, str, Record]] = []
        self._pairs: list[tuple[str, Record, Record]] = []
        self.used_emails: set[str] = set()  # lower-cased, across both sides
        self.used_org_numbers: set[str] = set()

    def add(self, side: str, entity: str, record: Record) -> Record:
        (self.svenn if side == SVENN else self.tripletex)[PLURAL[entity]].append(record)
        return record

    def case(self, rule: str, side: str, entity: str, record: Record) -> None:
        self._cases.append((rule, side, entity, record))

    def pair(self, entity: str, svenn_record: Record, tripletex_record: Record) -> None:
        """Declare two records the same real-world thing (equal key, or e-mail for EMAIL_MATCH)."""
        self._pairs.append((entity, svenn_record, tripletex_record))

    def unique_email(self, make: Callable[[], str]) -> str:
        """Call `make()` until it yields an e-mail not used yet (case-insensitively)."""
        for attempt in range(1000):
            email = make()
            if attempt:
                local, domain = email.split("@", 1)
                email = f"{local}{attempt + 1}@{domain}"
            if email.lower() not in self.used_emails:
                self.used_emails.add(email.lower())
                return email
        raise RuntimeError("could not find an unused e-mail address")

    def unique_org_number(self, make: Callable[[], str]) -> str:
        while True:
            number = make()
            if number not in self.used_org_numbers:
                self.used_org_numbers.add(number)
                return number

    def finish(
        self,
    ) -> tuple[
        dict[str, list[Record]],
        dict[str, list[Record]],
        dict[str, list[tuple[str, str, int]]],
        dict[str, list[tuple[int, int]]],
    ]:
        for lists in (self.svenn, self.tripletex):
            for name, records in lists.items():
                # Departments keep their order; Tripletex employee 1 (the token owner) stays first.
                fixed = 0
                if lists is self.tripletex:
                    fixed = {"departments": len(records), "employees": 1}.get(name, 0)
                rest = records[fixed:]
                self.rng.shuffle(rest)
                records[fixed:] = rest
                for index, record in enumerate(records, start=1):
                    record["id"] = index
        for record in self.svenn["projects"]:
            for field in ("parent_id", "customer_id", "project_manager_id"):
                if record[field] is not None:
                    record[field] = record[field]["id"]
            record["member_ids"] = sorted(member["id"] for member in record["member_ids"])
        for record in self.tripletex["employees"]:
            record["department"] = _ref(record["department"])
        for record in self.tripletex["projects"]:
            for field in ("customer", "projectManager", "mainProject", "department"):
                record[field] = _ref(record[field])
            record["participants"] = [
                {"employee": {"id": employee["id"]}, "adminAccess": admin}
                for employee, admin in record["participants"]
            ]
        cases: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for rule, side, entity, record in self._cases:
            cases[rule].append((side, entity, record["id"]))
        pairs: dict[str, list[tuple[int, int]]] = {"employee": [], "customer": [], "project": []}
        for entity, svenn_record, tripletex_record in self._pairs:
            pairs[entity].append((svenn_record["id"], tripletex_record["id"]))
        return (
            self.svenn,
            self.tripletex,
            {rule: sorted(set(found)) for rule, found in cases.items()},
            {entity: sorted(found) for entity, found in pairs.items()},
        )


def _ref(target: Record | None) -> dict[str, int] | None:
    return None if target is None else {"id": target["id"]}


# Shares of a matched world, per entity, over the union of both sides.
EQUAL_SHARE = 0.75  # on both sides, equal key and equal canonical fields
DIFF_SHARE = 0.05  # on both sides, equal key, one canonical field differs
MIN_GENERIC = 4


def scaled(total: int, fraction: float, minimum: int) -> int:
    """How many records of one special case: a share of the entity, never below `minimum`."""
    return max(minimum, round(total * fraction))


def plan_counts(
    total: int, special_units: int, special_equal_pairs: int
) -> tuple[int, int, int, int]:
    """(equal pairs, differing pairs, Svenn-only, Tripletex-only) generic records.

    `special_units` is how many union members the special cases already contribute (a pair
    counts once); the generic records fill the rest of `total` in the matched-world shares.
    When the special cases crowd a small world, the shares bend but every kind is present.
    """
    diff = scaled(total, DIFF_SHARE, 2)
    equal = round(total * EQUAL_SHARE) - special_equal_pairs
    equal = max(MIN_GENERIC, min(equal, total - special_units - diff - 2 * MIN_GENERIC))
    rest = max(total - special_units - equal - diff, 2 * MIN_GENERIC)
    return equal, diff, rest // 2, rest - rest // 2


class KeySequence:
    """Business keys (numbers) from one series with small random gaps, so no key is reused
    by accident: a key reaches both sides only when a builder puts it there on purpose."""

    def __init__(self, rng: random.Random, start: int) -> None:
        self._rng = rng
        self._next = start

    def take(self) -> int:
        value = self._next
        self._next += 1 if self._rng.random() < 0.85 else self._rng.randint(2, 6)
        return value
