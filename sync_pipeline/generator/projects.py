"""Projects of both sides: a matched set plus the P1–P12, duplicate-key and tombstone cases."""

from __future__ import annotations

import datetime as dt

from . import norwegian as no
from .builder import (
    SVENN,
    TRIPLETEX,
    KeySequence,
    Record,
    WorldBuilder,
    plan_counts,
    scaled,
)
from .customers import CustomerPools
from .employees import EmployeePools

Pair = tuple[Record, Record]

# P6: characters other than letters, digits and "." make a Svenn number unsyncable.
INVALID_NUMBERS = ("12/3", "A-1", "P 100", "#77", "40_2", "7+8", "1,5")
# P6: letters (æøå too) and "." are allowed; these must sync like numeric ones.
VALID_ALPHANUMERIC = ("A{n}", "Bø{n}", "2025.{n}", "Å{n}")

_FIRST_START = dt.date(2022, 1, 1).toordinal()
_LAST_START = dt.date(2026, 11, 1).toordinal()


def _iso(ordinal: int | None) -> str | None:
    return None if ordinal is None else dt.date.fromordinal(ordinal).isoformat()


class _Projects:
    def __init__(self, b: WorldBuilder, customers: CustomerPools, employees: EmployeePools):
        self.b = b
        self.rng = b.rng
        self.customers = customers
        self.employees = employees
        self.numbers = KeySequence(b.rng, start=1000)
        self.matched_top: list[Pair] = []  # live top-level pairs, parents for P2
        self.svenn_customers = [s for s, _ in customers.matched] + customers.svenn_only
        self.tripletex_customers = [t for _, t in customers.matched] + customers.tripletex_only
        self.svenn_managers = [s for s, _ in employees.managers] + [
            s for s in employees.svenn_only if s["last_name"] is not None
        ]
        self.tripletex_managers = [t for _, t in employees.managers]
        self.tripletex_managers += employees.tripletex_only_managers()
        self.svenn_members = [s for s, _ in employees.matched] + employees.svenn_only
        self.tripletex_members = [t for _, t in employees.matched] + employees.tripletex_only

    # -- canonical project and its two representations --------------------------------
    def data(self) -> dict:
        rng = self.rng
        start = rng.randint(_FIRST_START, _LAST_START)
        completed = rng.random() < 0.3
        end = start + rng.randint(7, 400) if rng.random() < (0.8 if completed else 0.5) else None
        return {
            "name": no.project_name(rng),
            "description": no.project_description(rng),
            "start": start,
            "end": end,
            "completed": completed,
        }

    def svenn(
        self,
        p: dict,
        number: str | None,
        customer: Record | None,
        manager: Record | None,
        members: list[Record],
        parent: Record | None = None,
    ) -> Record:
        return self.b.add(
            SVENN,
            "project",
            {
                "id": None,
                "display_id": number,
                "name": p["name"],
                "description": p["description"],
                "start_date": _iso(p["start"]),
                "end_date": _iso(p["end"]),
                "status": "completed" if p["completed"] else "active",
                "parent_id": parent,
                "customer_id": customer,
                "project_manager_id": manager,
                "member_ids": members,
            },
        )

    def tripletex(
        self,
        p: dict,
        number: str | None,
        customer: Record | None,
        manager: Record,
        participants: list[Record],
        *,
        main: Record | None = None,
        internal: bool = False,
    ) -> Record:
        return self.b.add(
            TRIPLETEX,
            "project",
            {
                "id": None,
                "number": number or "",
                "name": p["name"],
                "description": p["description"] or "",
                "startDate": _iso(p["start"]),
                "endDate": _iso(p["end"]),
                "isClosed": p["completed"],
                "isInternal": internal,
                "customer": customer,
                "projectManager": manager,
                "mainProject": main,
                "department": (
                    self.rng.choice(self.b.tripletex["departments"])
                    if self.rng.random() < 0.5
                    else None
                ),
                "participants": [(e, e is manager) for e in participants],
            },
        )

    def team(self, manager: Record | None, pool: list[Record], most: int = 3) -> list[Record]:
        """The manager (Tripletex adds it as a participant) plus up to `most` others."""
        others = self.rng.sample(pool, min(len(pool), self.rng.randint(0, most)))
        team = [manager] if manager is not None else []
        return team + [e for e in others if e is not manager]

    def matched_team(self) -> tuple[Pair, list[Pair]]:
        manager = self.rng.choice(self.employees.managers)
        others = self.rng.sample(self.employees.matched, self.rng.randint(0, 3))
        return manager, [manager] + [pair for pair in others if pair is not manager]

    def both(
        self, p: dict, number: str, *, internal: bool = False, t_override: dict | None = None
    ) -> Pair:
        customer = None
        if not internal and self.customers.matched and self.rng.random() < 0.85:
            customer = self.rng.choice(self.customers.matched)
        manager, team = self.matched_team()
        s = self.svenn(p, number, customer and customer[0], manager[0], [pair[0] for pair in team])
        t = self.tripletex(
            t_override or p,
            number,
            customer and customer[1],
            manager[1],
            [pair[1] for pair in team],
            internal=internal,
        )
        self.b.pair("project", s, t)
        return s, t

    def svenn_customer(self) -> Record | None:
        return self.rng.choice(self.svenn_customers) if self.rng.random() < 0.85 else None

    def svenn_alone(
        self, p: dict, number: str, *, customer: Record | None = None, manager: Record | None = None
    ) -> Record:
        manager = manager or self.rng.choice(self.svenn_managers)
        return self.svenn(
            p, number, customer, manager, self.team(manager, self.svenn_members, most=2)
        )

    def tripletex_alone(self, p: dict, number: str | None, *, internal: bool = False) -> Record:
        customer = None
        if not internal and self.rng.random() < 0.85:
            customer = self.rng.choice(self.tripletex_customers)
        manager = self.rng.choice(self.tripletex_managers)
        team = self.team(manager, self.tripletex_members, most=5 if internal else 3)
        return self.tripletex(p, number, customer, manager, team, internal=internal)

    # -- kinds ------------------------------------------------------------------------
    def equal(self, alphanumeric: int | None = None) -> None:
        number = str(self.numbers.take())
        if alphanumeric is not None:
            number = VALID_ALPHANUMERIC[alphanumeric % len(VALID_ALPHANUMERIC)].format(n=number)
        pair = self.both(self.data(), number)
        self.matched_top.append(pair)
        if alphanumeric is not None:
            self.b.case("P6_VALID", SVENN, "project", pair[0])
            self.b.case("P6_VALID", TRIPLETEX, "project", pair[1])

    def differing(self, index: int) -> None:
        kind = ("name", "empty_end", "start_date", "status", "end_date")[index % 5]
        p = self.data()
        if kind != "status":
            p["end"] = p["end"] or p["start"] + self.rng.randint(30, 200)
        q = dict(p)  # the Tripletex values
        if kind == "name":
            while q["name"] == p["name"]:
                q["name"] = no.project_name(self.rng)
        elif kind == "start_date":
            q["start"] = p["start"] - self.rng.randint(1, 25)  # earlier: never after the end
        elif kind == "end_date":
            q["end"] = p["end"] + self.rng.randint(1, 60)
        elif kind == "status":
            q["completed"] = not p["completed"]
        else:
            q["end"] = None
        s, t = self.both(p, str(self.numbers.take()), t_override=q)
        rule = "EMPTY_IN_TRIPLETEX" if kind == "empty_end" else "FIELD_DIFF"
        self.b.case(rule, SVENN, "project", s)
        self.b.case(rule, TRIPLETEX, "project", t)

    def internal_with_svenn_counterpart(self) -> None:
        """P4: linked and synced like any project, but stays internal in Tripletex."""
        p = dict(self.data(), name=self.rng.choice(no.INTERNAL_PROJECT_NAMES), completed=False)
        s, t = self.both(p, str(self.numbers.take()), internal=True)
        self.b.case("P4", SVENN, "project", s)
        self.b.case("P4", TRIPLETEX, "project", t)

    def internal(self) -> None:
        p = dict(self.data(), name=self.rng.choice(no.INTERNAL_PROJECT_NAMES), completed=False)
        p["end"] = None
        t = self.tripletex_alone(p, str(self.numbers.take()), internal=True)
        self.b.case("P3", TRIPLETEX, "project", t)

    def missing_start_date(self) -> None:
        p = dict(self.data(), start=None, end=None, completed=False)
        s = self.svenn_alone(p, str(self.numbers.take()), customer=self.svenn_customer())
        self.b.case("P1", SVENN, "project", s)

    def svenn_subproject(self) -> None:
        """P2: Svenn lets a sub-project reuse its parent's number."""
        parent, _ = self.rng.choice(self.matched_top)
        p = self.data()
        p["name"] = f"{parent['name']} – {self.rng.choice(no.PROJECT_PHASES)}"
        members = parent["member_ids"][: self.rng.randint(1, len(parent["member_ids"]))]
        s = self.svenn(
            p,
            parent["display_id"],
            parent["customer_id"],
            parent["project_manager_id"],
            members,
            parent=parent,
        )
        self.b.case("P2", SVENN, "project", s)

    def tripletex_subproject(self) -> None:
        """P2: Tripletex sub-projects (mainProject) carry their own numbers."""
        _, parent = self.rng.choice(self.matched_top)
        p = self.data()
        p["name"] = f"{parent['name']} – {self.rng.choice(no.PROJECT_PHASES)}"
        team = [e for e, _admin in parent["participants"]]
        t = self.tripletex(
            p,
            str(self.numbers.take()),
            parent["customer"],
            parent["projectManager"],
            team[: self.rng.randint(1, len(team))],
            main=parent,
        )
        self.b.case("P2", TRIPLETEX, "project", t)

    def without_number(self) -> None:
        t = self.tripletex_alone(self.data(), None)
        self.b.case("P5", TRIPLETEX, "project", t)

    def invalid_number(self, index: int) -> None:
        if index < len(INVALID_NUMBERS):
            number = INVALID_NUMBERS[index]
        else:
            number = f"X-{self.numbers.take()}"
        s = self.svenn_alone(self.data(), number, customer=self.svenn_customer())
        self.b.case("P6", SVENN, "project", s)

    def manager_cannot_manage(self, index: int) -> None:
        """P10: no manager at all, or one whose Tripletex counterpart is NO_ACCESS."""
        p = self.data()
        number = str(self.numbers.take())
        customer = self.svenn_customer()
        if index == 0 or not self.employees.no_access:
            s = self.svenn(p, number, customer, None, self.team(None, self.svenn_members))
        else:
            manager = self.rng.choice(self.employees.no_access)[0]
            s = self.svenn_alone(p, number, customer=customer, manager=manager)
        self.b.case("P10", SVENN, "project", s)

    def unsynced_customer(self, index: int, count: int) -> None:
        """P11: the customer is not synced (non-numeric number, C1; the last: inactive, C2)."""
        if index == count - 1 and self.customers.svenn_inactive:
            customer = self.customers.svenn_inactive[0]
        else:
            customer = self.customers.non_numeric[index % len(self.customers.non_numeric)]
        s = self.svenn_alone(self.data(), str(self.numbers.take()), customer=customer)
        self.b.case("P11", SVENN, "project", s)

    def duplicate_in_svenn(self, index: int) -> None:
        """G3 DUPLICATE_KEY: two live top-level Svenn projects with one number (Svenn does not
        require unique numbers). Every other such number also exists in Tripletex."""
        number = str(self.numbers.take())
        for _ in range(2):
            s = self.svenn_alone(self.data(), number, customer=self.svenn_customer())
            self.b.case("DUPLICATE_KEY", SVENN, "project", s)
        if index % 2 == 0:
            self.tripletex_alone(self.data(), number)

    def tombstone(self, index: int) -> None:
        """Soft-deleted in Svenn; the first still exists in Tripletex (P8)."""
        if index == 0:
            s, _ = self.both(self.data(), str(self.numbers.take()))
        else:
            s = self.svenn_alone(self.data(), str(self.numbers.take()))
        s["deleted"] = True
        self.b.case("TOMBSTONE", SVENN, "project", s)

    def svenn_only(self) -> None:
        self.svenn_alone(self.data(), str(self.numbers.take()), customer=self.svenn_customer())

    def tripletex_only(self) -> None:
        self.tripletex_alone(self.data(), str(self.numbers.take()))

    def list_status_and_access_cases(self) -> None:
        """P7 (completed/closed) and P12 (members/participants) over every live project."""
        for s in self.b.svenn["projects"]:
            if s.get("deleted"):
                continue
            if s["status"] == "completed":
                self.b.case("P7", SVENN, "project", s)
            if s["member_ids"]:
                self.b.case("P12", SVENN, "project", s)
        for t in self.b.tripletex["projects"]:
            if t["isClosed"]:
                self.b.case("P7", TRIPLETEX, "project", t)
            if t["participants"]:
                self.b.case("P12", TRIPLETEX, "project", t)


def build_projects(
    b: WorldBuilder, total: int, customers: CustomerPools, employees: EmployeePools
) -> None:
    pr = _Projects(b, customers, employees)
    n_alnum = scaled(total, 0.002, 3)
    n_p1 = scaled(total, 0.005, 3)
    n_p2 = scaled(total, 0.01, 3)  # per side
    n_p3 = scaled(total, 0.002, 3)
    n_p4 = scaled(total, 0.0002, 1)
    n_p5 = scaled(total, 0.003, 3)
    n_p6 = scaled(total, 0.003, 5)
    n_p10 = scaled(total, 0.002, 2)
    n_p11 = scaled(total, 0.003, 4)
    n_dup = scaled(total, 0.0003, 2)
    n_tomb = scaled(total, 0.005, 3)
    special_pairs = n_p4 + 1  # the tombstone still in Tripletex
    special_units = n_p1 + 2 * n_p2 + n_p3 + n_p4 + n_p5 + n_p6 + n_p10 + n_p11 + n_tomb
    special_units += 2 * n_dup + (n_dup + 1) // 2
    n_equal, n_diff, n_svenn, n_tripletex = plan_counts(total, special_units, special_pairs)

    for i in range(n_equal):
        pr.equal(alphanumeric=i if i < n_alnum else None)
    for i in range(n_diff):
        pr.differing(i)
    for _ in range(n_p4):
        pr.internal_with_svenn_counterpart()
    for _ in range(n_p3):
        pr.internal()
    for _ in range(n_p1):
        pr.missing_start_date()
    for _ in range(n_p2):
        pr.svenn_subproject()
        pr.tripletex_subproject()
    for _ in range(n_p5):
        pr.without_number()
    for i in range(n_p6):
        pr.invalid_number(i)
    for i in range(n_p10):
        pr.manager_cannot_manage(i)
    for i in range(n_p11):
        pr.unsynced_customer(i, n_p11)
    for i in range(n_dup):
        pr.duplicate_in_svenn(i)
    for i in range(n_tomb):
        pr.tombstone(i)
    for _ in range(n_svenn):
        pr.svenn_only()
    for _ in range(n_tripletex):
        pr.tripletex_only()
    pr.list_status_and_access_cases()
