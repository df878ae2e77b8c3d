"""A matched world: one company's Svenn and Tripletex data, overlapping like real customers' do.

About 75 % of each entity exists on both sides with equal keys and equal canonical fields
(SYNC-RULES.md §0), about 5 % on both sides with one canonical field differing, and the rest
on one side only; on top of that every rule of SYNC-RULES.md has a handful of records that
trigger it, listed in `World.cases`.

Case ids in `World.cases` (rule ids where a rule applies):
  P1 P2 P3 P4 P5 P6 P7 P10 P11 P12 C1 C2 C3 C5 C7 E1 E2 E3 — records that trigger the rule
  P6_VALID            numbers with letters/æøå/"." that are valid and must sync
  DUPLICATE_KEY       live Svenn records whose keys collide after trimming (G3)
  EMAIL_MATCH         employee pairs matching only by e-mail, case-insensitively (G3)
  TRIMMED_KEY         customer pairs whose Svenn key has surrounding blanks (G3)
  FIELD_DIFF          pairs with one canonical field different (G3: Tripletex wins)
  EMPTY_IN_TRIPLETEX  pairs where Tripletex lacks a value Svenn has (G3: filled from Svenn)
  TOMBSTONE           soft-deleted Svenn records (`"deleted": True`; P8, C6)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from . import norwegian as no
from .builder import PLURAL, SVENN, WorldBuilder
from .customers import build_customers
from .employees import build_employees
from .projects import build_projects

DEMO_SEED: int = 2026

# Records per entity across the union of both sides (a linked pair counts once).
SCALES: dict[str, dict[str, int]] = {
    "demo": {"customers": 150, "projects": 120, "employees": 60},
    "small": {"customers": 5_000, "projects": 900, "employees": 200},
    "large": {"customers": 50_000, "projects": 9_000, "employees": 2_000},
}
# Below these the special cases would crowd out the generic records.
MINIMUM_SIZES: dict[str, int] = {"customers": 80, "projects": 90, "employees": 45}

DEPARTMENTS = (("Avdeling", ""), ("Bygg", "10"), ("Rør og VVS", "20"), ("Elektro", "30"))


@dataclass
class World:
    seed: int
    company: dict
    svenn: dict[str, list[dict]]  # "employees", "customers", "projects"
    tripletex: dict[str, list[dict]]  # "departments", "employees", "customers", "projects"
    cases: dict[str, list[tuple[str, str, int]]]  # case id -> [(side, entity, local id)]
    # entity -> [(Svenn id, Tripletex id)]: the same real-world record on both sides (equal
    # key after trimming, or equal e-mail for EMAIL_MATCH), tombstones included. A first sync
    # should link each live pair; a DUPLICATE_KEY record is never in a pair.
    pairs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def record(self, side: str, entity: str, local_id: int) -> dict[str, Any]:
        """The record with that local id (ids are contiguous from 1)."""
        records = (self.svenn if side == SVENN else self.tripletex)[PLURAL[entity]]
        return records[local_id - 1]


def sizes(scale: str | float) -> dict[str, int]:
    """Union sizes per entity for a preset name or a multiplier of "large"."""
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; use one of {sorted(SCALES)} or a float")
        wanted = SCALES[scale]
    elif scale > 0:
        wanted = {entity: round(n * scale) for entity, n in SCALES["large"].items()}
    else:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return {entity: max(n, MINIMUM_SIZES[entity]) for entity, n in wanted.items()}


def generate_world(seed: int = DEMO_SEED, scale: str | float = "demo") -> World:
    """Deterministic for (seed, scale): all randomness comes from one `random.Random(seed)`."""
    size = sizes(scale)
    rng = random.Random(seed)
    b = WorldBuilder(rng)
    name = no.company_name(rng)
    company = {
        "name": name if name.endswith(" AS") else f"{name} AS",
        "organization_number": b.unique_org_number(lambda: no.organization_number(rng)),
    }
    for dept_name, number in DEPARTMENTS:
        b.tripletex["departments"].append(
            {"id": None, "name": dept_name, "departmentNumber": number}
        )
    employees = build_employees(
        b, size["employees"], no.mail_domain(company["name"]), b.tripletex["departments"]
    )
    customers = build_customers(b, size["customers"])
    build_projects(b, size["projects"], customers, employees)
    svenn, tripletex, cases, pairs = b.finish()
    return World(
        seed=seed, company=company, svenn=svenn, tripletex=tripletex, cases=cases, pairs=pairs
    )
