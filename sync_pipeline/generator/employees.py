"""Employees of both sides: a matched set plus the E1–E3, e-mail-match and duplicate cases."""

from __future__ import annotations

from dataclasses import dataclass, field

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

Pair = tuple[Record, Record]
USER_TYPES = ("EXTENDED", "STANDARD", "NO_ACCESS")
_USER_TYPE_WEIGHTS = (15, 55, 30)


@dataclass
class EmployeePools:
    """Live, active employees that projects may refer to."""

    managers: list[Pair] = field(default_factory=list)  # Tripletex side may manage projects
    no_access: list[Pair] = field(default_factory=list)  # Tripletex side is NO_ACCESS (P10)
    matched: list[Pair] = field(default_factory=list)
    svenn_only: list[Record] = field(default_factory=list)
    tripletex_only: list[Record] = field(default_factory=list)

    def tripletex_only_managers(self) -> list[Record]:
        return [t for t in self.tripletex_only if t["userType"] != "NO_ACCESS"]


class _Employees:
    def __init__(self, b: WorldBuilder, domain: str, departments: list[Record]) -> None:
        self.b = b
        self.rng = b.rng
        self.domain = domain
        self.departments = departments
        self.numbers = KeySequence(b.rng, start=1)
        self.pools = EmployeePools()

    # -- canonical person and its two representations ---------------------------------
    def person(self, *, surname: bool = True, email: bool = True) -> dict:
        first = no.first_name(self.rng)
        last = no.last_name(self.rng) if surname else None
        mail = None
        if email:
            mail = self.b.unique_email(
                lambda: f"{no.mail_local_part(first, last or '')}@{self.domain}"
            )
        phone = no.mobile_number(self.rng) if self.rng.random() < 0.85 else None
        return {"first": first, "last": last, "email": mail, "phone": phone}

    def svenn(self, p: dict, number: str | None, *, active: bool = True) -> Record:
        return self.b.add(
            SVENN,
            "employee",
            {
                "id": None,
                "employee_number": number,
                "first_name": p["first"],
                "last_name": p["last"],
                "email": p["email"],
                "phone": p["phone"],
                "is_active": active,
            },
        )

    def tripletex(self, p: dict, number: str | None, user_type: str) -> Record:
        return self.b.add(
            TRIPLETEX,
            "employee",
            {
                "id": None,
                "firstName": p["first"],
                "lastName": p["last"] or "",
                "employeeNumber": number or "",
                "email": p["email"] or "",
                "phoneNumberMobile": p["phone"] or "",
                "userType": user_type,
                "department": self.rng.choice(self.departments),
            },
        )

    def user_type(self) -> str:
        return self.rng.choices(USER_TYPES, _USER_TYPE_WEIGHTS)[0]

    def person_for(self, user_type: str, email: bool | None = None) -> dict:
        """Users who can log in need an e-mail; half the NO_ACCESS employees have none."""
        if email is None:
            email = user_type != "NO_ACCESS" or self.rng.random() < 0.5
        return self.person(email=email)

    def matched(self, user_type: str, email: bool | None = None) -> Pair:
        p = self.person_for(user_type, email)
        number = str(self.numbers.take())
        pair = self.svenn(p, number), self.tripletex(p, number, user_type)
        self.b.pair("employee", *pair)
        return pair

    # -- kinds ------------------------------------------------------------------------
    def equal(self, user_type: str, email: bool | None = None) -> None:
        pair = self.matched(user_type, email)
        self.pools.matched.append(pair)
        (self.pools.no_access if user_type == "NO_ACCESS" else self.pools.managers).append(pair)

    def differing(self, index: int) -> None:
        kind = ("first_name", "empty_phone", "last_name", "empty_email", "phone")[index % 5]
        user_type = "NO_ACCESS" if kind == "empty_email" else self.user_type()
        p = self.person(email=True)
        number = str(self.numbers.take())
        q = dict(p)
        if kind == "first_name":
            while q["first"] == p["first"]:
                q["first"] = no.first_name(self.rng)
        elif kind == "last_name":
            while q["last"] == p["last"]:
                q["last"] = no.last_name(self.rng)
        elif kind == "phone":
            p["phone"] = p["phone"] or no.mobile_number(self.rng)
            while q["phone"] in (None, p["phone"]):
                q["phone"] = no.mobile_number(self.rng)
        elif kind == "empty_phone":
            p["phone"] = p["phone"] or no.mobile_number(self.rng)
            q["phone"] = None
        else:
            q["email"] = None
        s, t = self.svenn(p, number), self.tripletex(q, number, user_type)
        self.b.pair("employee", s, t)
        rule = "EMPTY_IN_TRIPLETEX" if kind.startswith("empty_") else "FIELD_DIFF"
        self.b.case(rule, SVENN, "employee", s)
        self.b.case(rule, TRIPLETEX, "employee", t)

    def inactive_in_svenn(self, *, with_counterpart: bool) -> None:
        """E3: inactive Svenn employee; some still exist in Tripletex (someone who left)."""
        user_type = self.user_type()
        p = self.person_for(user_type)
        number = str(self.numbers.take())
        s = self.svenn(p, number, active=False)
        if with_counterpart:
            self.b.pair("employee", s, self.tripletex(p, number, user_type))
        self.b.case("E3", SVENN, "employee", s)

    def email_match(self, index: int) -> None:
        """G3 fallback: the keys do not match, the e-mail does (Tripletex spells it with
        capitals). Every other one has no number in Tripletex, which makes it an E2 too."""
        p = self.person(email=True)
        number = str(self.numbers.take())
        s = self.svenn(p, None if index % 2 == 0 else number)
        shouted = dict(p, email=p["email"].split("@")[0].title() + "@" + self.domain)
        t = self.tripletex(shouted, number if index % 2 == 0 else None, "STANDARD")
        self.b.pair("employee", s, t)
        self.b.case("EMAIL_MATCH", SVENN, "employee", s)
        self.b.case("EMAIL_MATCH", TRIPLETEX, "employee", t)
        if index % 2:
            self.b.case("E2", TRIPLETEX, "employee", t)

    def tombstone(self, *, with_counterpart: bool) -> None:
        user_type = self.user_type()
        p = self.person_for(user_type)
        number = str(self.numbers.take())
        s = self.svenn(p, number)
        s["deleted"] = True
        if with_counterpart:
            self.b.pair("employee", s, self.tripletex(p, number, user_type))
        self.b.case("TOMBSTONE", SVENN, "employee", s)

    def missing_surname(self) -> None:
        """E1: first name only; some have no e-mail either."""
        first = no.first_name(self.rng)
        mail = None
        if self.rng.random() < 0.7:
            mail = self.b.unique_email(lambda: f"{no.mail_local_part(first)}@{self.domain}")
        p = {"first": first, "last": None, "email": mail, "phone": no.mobile_number(self.rng)}
        s = self.svenn(p, str(self.numbers.take()))
        self.pools.svenn_only.append(s)
        self.b.case("E1", SVENN, "employee", s)

    def missing_number_in_tripletex(self) -> None:
        user_type = self.user_type()
        t = self.tripletex(self.person_for(user_type), None, user_type)
        self.pools.tripletex_only.append(t)
        self.b.case("E2", TRIPLETEX, "employee", t)

    def duplicate_in_svenn(self, index: int) -> None:
        """G3 DUPLICATE_KEY: two live Svenn employees whose numbers collide once trimmed
        ("57" and " 57"; the API accepts both). The first such key also exists in Tripletex."""
        number = str(self.numbers.take())
        for raw in (number, f" {number}" if index % 2 == 0 else f"{number} "):
            s = self.svenn(self.person(), raw)
            self.b.case("DUPLICATE_KEY", SVENN, "employee", s)
        if index == 0:
            self.pools.tripletex_only.append(self.tripletex(self.person(), number, "STANDARD"))

    def svenn_only(self) -> None:
        s = self.svenn(self.person(), str(self.numbers.take()))
        self.pools.svenn_only.append(s)

    def tripletex_only(self) -> None:
        user_type = self.user_type()
        t = self.tripletex(self.person_for(user_type), str(self.numbers.take()), user_type)
        self.pools.tripletex_only.append(t)


def build_employees(
    b: WorldBuilder, total: int, domain: str, departments: list[Record]
) -> EmployeePools:
    """Employee 1 in Tripletex is the API token owner (EXTENDED), matched in Svenn."""
    e = _Employees(b, domain, departments)
    n_e1 = scaled(total, 0.005, 3)
    n_e2 = scaled(total, 0.005, 3)
    n_e3 = scaled(total, 0.01, 3)
    n_e3_matched = max(1, n_e3 // 3)
    n_email = scaled(total, 0.005, 4)
    n_dup = scaled(total, 0.0005, 1)
    n_tomb = scaled(total, 0.005, 2)
    n_tomb_matched = n_tomb // 2
    special_pairs = n_e3_matched + n_email + n_tomb_matched
    special_units = special_pairs + n_e1 + n_e2 + (n_e3 - n_e3_matched) + 2 * n_dup + 1
    special_units += n_tomb - n_tomb_matched
    n_equal, n_diff, n_svenn, n_tripletex = plan_counts(total, special_units, special_pairs)

    e.equal("EXTENDED")  # the token owner
    e.equal("STANDARD")
    e.equal("NO_ACCESS", email=False)  # NO_ACCESS employees may lack an e-mail
    for _ in range(n_equal - 3):
        e.equal(e.user_type())
    for i in range(n_diff):
        e.differing(i)
    for i in range(n_e3):
        e.inactive_in_svenn(with_counterpart=i < n_e3_matched)
    for i in range(n_email):
        e.email_match(i)
    for i in range(n_tomb):
        e.tombstone(with_counterpart=i < n_tomb_matched)
    for _ in range(n_e1):
        e.missing_surname()
    for _ in range(n_e2):
        e.missing_number_in_tripletex()
    for i in range(n_dup):
        e.duplicate_in_svenn(i)
    for _ in range(n_svenn):
        e.svenn_only()
    for _ in range(n_tripletex):
        e.tripletex_only()
    if not e.pools.tripletex_only_managers():
        e.pools.tripletex_only.append(e.tripletex(e.person(), str(e.numbers.take()), "STANDARD"))
    return e.pools
