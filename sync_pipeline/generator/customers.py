"""Customers of both sides: a matched set plus the C1–C7, duplicate-key and tombstone cases."""

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

# C1: customer ids a Svenn user may type that are not a positive int32 (None: left empty).
NON_NUMERIC_NUMBERS = ("K-100", "abc", None, "3000000000", "0", "12.5", "-7", "A1", "K 20")


@dataclass
class CustomerPools:
    """Live customers that projects may refer to."""

    matched: list[Pair] = field(default_factory=list)  # active, equal on both sides
    svenn_only: list[Record] = field(default_factory=list)  # active, numeric: will be created
    tripletex_only: list[Record] = field(default_factory=list)  # active
    non_numeric: list[Record] = field(default_factory=list)  # C1 (for P11)
    svenn_inactive: list[Record] = field(default_factory=list)  # C2 (for P11)


class _Customers:
    def __init__(self, b: WorldBuilder) -> None:
        self.b = b
        self.rng = b.rng
        self.numbers = KeySequence(b.rng, start=10001)  # Tripletex's customer series
        self.pools = CustomerPools()

    # -- canonical customer and its two representations -------------------------------
    def data(self, *, email: bool | None = None) -> dict:
        rng = self.rng
        if rng.random() < 0.7:
            name = no.company_name(rng)
            org = self.b.unique_org_number(lambda: no.organization_number(rng))
            mail = no.company_email(rng, name)
        else:
            first, last = no.first_name(rng), no.last_name(rng)
            name, org = f"{first} {last}", None
            mail = no.personal_email(rng, first, last)
        if email is False or (email is None and rng.random() < 0.15):
            mail = None
        phone = no.mobile_number(rng) if rng.random() < 0.8 else None
        return {
            "name": name,
            "email": mail,
            "phone": phone,
            "org": org,
            "active": True,
            "address": no.street_address(rng),
        }

    def svenn(self, c: dict, number: str | None) -> Record:
        return self.b.add(
            SVENN,
            "customer",
            {
                "id": None,
                "customer_number": number,
                "name": c["name"],
                "email": c["email"],
                "phone": c["phone"],
                "organization_number": c["org"],
                "is_active": c["active"],
            },
        )

    def tripletex(self, c: dict, number: int) -> Record:
        email = c["email"] or ""
        method = "EMAIL" if email else "PAPER"
        if c["org"] and self.rng.random() < 0.15:
            method = "EHF"
        line, postal_code, city = c["address"]
        return self.b.add(
            TRIPLETEX,
            "customer",
            {
                "id": None,
                "customerNumber": number,
                "name": c["name"],
                "email": email,
                "invoiceEmail": email,
                "phoneNumber": c["phone"] or "",
                "organizationNumber": c["org"] or "",
                "isInactive": not c["active"],
                "invoiceSendMethod": method,
                "postalAddress": {"addressLine1": line, "postalCode": postal_code, "city": city},
            },
        )

    def both(self, c: dict, svenn_c: dict | None = None, raw: str | None = None) -> Pair:
        number = self.numbers.take()
        s = self.svenn(svenn_c or c, raw if raw is not None else str(number))
        t = self.tripletex(c, number)
        self.b.pair("customer", s, t)
        return s, t

    # -- kinds ------------------------------------------------------------------------
    def equal(self) -> None:
        c = self.data()
        c["active"] = self.rng.random() >= 0.03
        pair = self.both(c)
        if c["active"]:
            self.pools.matched.append(pair)

    def differing(self, index: int) -> None:
        kinds = ("name", "empty_email", "email", "empty_phone", "phone", "organization_number")
        kind = kinds[index % len(kinds)]
        svenn_c = self.data(email=True)
        svenn_c["phone"] = svenn_c["phone"] or no.mobile_number(self.rng)
        c = dict(svenn_c)  # the Tripletex values
        if kind == "name":
            c["name"] = _renamed(svenn_c["name"], svenn_c["org"] is not None)
        elif kind == "email":
            c["email"] = f"ny.{svenn_c['email']}"
        elif kind == "phone":
            while c["phone"] == svenn_c["phone"]:
                c["phone"] = no.mobile_number(self.rng)
        elif kind == "organization_number":
            c["org"] = self.b.unique_org_number(lambda: no.organization_number(self.rng))
        elif kind == "empty_email":
            c["email"] = None
        else:
            c["phone"] = None
        s, t = self.both(c, svenn_c)
        rule = "EMPTY_IN_TRIPLETEX" if kind.startswith("empty_") else "FIELD_DIFF"
        self.b.case(rule, SVENN, "customer", s)
        self.b.case(rule, TRIPLETEX, "customer", t)

    def active_differs(self, rule: str) -> None:
        """C3: inactive in Svenn only (Tripletex stays active, warning).
        C7: inactive in Tripletex only (Svenn follows)."""
        c = self.data()
        svenn_c = dict(c, active=rule != "C3")
        c["active"] = rule == "C3"
        s, t = self.both(c, svenn_c)
        self.b.case(rule, SVENN, "customer", s)
        self.b.case(rule, TRIPLETEX, "customer", t)

    def trimmed_key(self, index: int) -> None:
        """G3: keys compare after trimming: Svenn " 10234" matches Tripletex 10234."""
        number = self.numbers.take()
        c = self.data()
        s = self.svenn(c, f" {number}" if index % 2 == 0 else f"{number} ")
        t = self.tripletex(c, number)
        self.b.pair("customer", s, t)
        self.pools.matched.append((s, t))
        self.b.case("TRIMMED_KEY", SVENN, "customer", s)
        self.b.case("TRIMMED_KEY", TRIPLETEX, "customer", t)

    def non_numeric(self, index: int) -> None:
        if index < len(NON_NUMERIC_NUMBERS):
            raw = NON_NUMERIC_NUMBERS[index]
        else:
            raw = f"K-{self.numbers.take()}"
        s = self.svenn(self.data(), raw)
        self.pools.non_numeric.append(s)
        self.b.case("C1", SVENN, "customer", s)

    def duplicate_in_svenn(self, index: int) -> None:
        """G3 DUPLICATE_KEY: the Svenn API only rejects equal strings, so "1234" and " 1234"
        can both be live. Every other such key also exists in Tripletex."""
        number = self.numbers.take()
        for raw in (str(number), f" {number}" if index % 2 == 0 else f"{number} "):
            s = self.svenn(self.data(), raw)
            self.b.case("DUPLICATE_KEY", SVENN, "customer", s)
        if index % 2 == 0:
            self.pools.tripletex_only.append(self.tripletex(self.data(), number))

    def inactive_one_side(self, side: str) -> None:
        c = dict(self.data(), active=False)
        number = self.numbers.take()
        if side == SVENN:
            record = self.svenn(c, str(number))
            self.pools.svenn_inactive.append(record)
        else:
            record = self.tripletex(c, number)
        self.b.case("C2", side, "customer", record)

    def without_email(self) -> None:
        """C5: will be created in Tripletex without an invoice e-mail (warning)."""
        s = self.svenn(self.data(email=False), str(self.numbers.take()))
        self.pools.svenn_only.append(s)
        self.b.case("C5", SVENN, "customer", s)

    def tombstone(self, index: int) -> None:
        """Soft-deleted in Svenn. The first reuses the number of a live customer (allowed:
        numbers are unique among live records only); the second still exists in Tripletex (C6)."""
        c = self.data()
        if index == 0 and self.pools.matched:
            s = self.svenn(c, self.rng.choice(self.pools.matched)[0]["customer_number"])
        elif index == 1:
            s, _ = self.both(c)
        else:
            s = self.svenn(c, str(self.numbers.take()))
        s["deleted"] = True
        self.b.case("TOMBSTONE", SVENN, "customer", s)

    def svenn_only(self) -> None:
        self.pools.svenn_only.append(self.svenn(self.data(), str(self.numbers.take())))

    def tripletex_only(self) -> None:
        self.pools.tripletex_only.append(self.tripletex(self.data(), self.numbers.take()))


def _renamed(name: str, company: bool) -> str:
    """How the same customer is often spelled in the other system."""
    if company:
        return name.removesuffix(" AS") if name.endswith(" AS") else f"{name} AS"
    first, _, last = name.partition(" ")
    return f"{last}, {first}"


def build_customers(b: WorldBuilder, total: int) -> CustomerPools:
    c = _Customers(b)
    n_c1 = scaled(total, 0.002, 6)
    n_dup = scaled(total, 0.0004, 2)
    n_c2 = scaled(total, 0.005, 3)
    n_c5 = scaled(total, 0.003, 3)
    n_c3 = scaled(total, 0.001, 1)
    n_c7 = scaled(total, 0.001, 1)
    n_trim = scaled(total, 0.0005, 2)
    n_tomb = scaled(total, 0.004, 3)
    special_pairs = n_trim + 1  # the tombstone still in Tripletex
    special_units = (
        n_c1 + 2 * n_dup + (n_dup + 1) // 2 + 2 * n_c2 + n_c5 + n_c3 + n_c7 + n_trim + n_tomb
    )
    n_equal, n_diff, n_svenn, n_tripletex = plan_counts(total, special_units, special_pairs)

    for _ in range(n_equal):
        c.equal()
    for i in range(n_diff):
        c.differing(i)
    for _ in range(n_c3):
        c.active_differs("C3")
    for _ in range(n_c7):
        c.active_differs("C7")
    for i in range(n_trim):
        c.trimmed_key(i)
    for i in range(n_c1):
        c.non_numeric(i)
    for i in range(n_dup):
        c.duplicate_in_svenn(i)
    for _ in range(n_c2):
        c.inactive_one_side(SVENN)
        c.inactive_one_side(TRIPLETEX)
    for _ in range(n_c5):
        c.without_email()
    for i in range(n_tomb):
        c.tombstone(i)
    for _ in range(n_svenn):
        c.svenn_only()
    for _ in range(n_tripletex):
        c.tripletex_only()
    return c.pools
