"""One Tripletex company in memory: its tables, indexes, change log and sessions.

Records are plain dicts keyed by the API's field names, with references held as ids
(``projectManager: 3``) and unset fields simply absent; the renderer fills in Tripletex's
defaults. Everything here is plain picklable data, saved by the hub's state file.
"""

from __future__ import annotations

import gc
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sync_pipeline.sandbox.tripletex.models import START_VERSION, TABLES

OSLO = ZoneInfo("Europe/Oslo")

#: Indexes kept per table: (table, field) → {value: [ids]}.
INDEXED = (
    ("project", "number"),
    ("project", "customer"),
    ("project", "mainProject"),
    ("customer", "customerNumber"),
    ("employee", "email"),
    ("projectParticipant", "project"),
)
_INDEXED_BY_TABLE = {t: tuple(f for t2, f in INDEXED if t2 == t) for t in TABLES}
#: Tables whose changes fire ``<table>.create|update|delete`` events (API-NOTES 8.3).
EVENT_TABLES = ("project", "customer", "employee")


def oslo_today() -> date:
    return datetime.now(OSLO).date()


def oslo_timestamp(epoch: float) -> str:
    """``2025-03-12T15:09:57+01:00``, as change timestamps come back (API-NOTES 3.1)."""
    return datetime.fromtimestamp(epoch, OSLO).isoformat(timespec="seconds")


def _index_value(table: str, fname: str, value: Any) -> Any:
    if table == "employee" and fname == "email":
        return value.strip().lower() if value else None
    return value


def default_settings() -> dict[str, Any]:
    return {
        "approveHourLists": False,
        "approveInvoices": False,
        "markReadyForInvoicing": False,
        "historicalInformation": False,
        "projectForecast": False,
        "budgetOnSubcontracts": False,
        "projectCategories": False,
        "referenceFee": False,
        "sortOrderProjects": "SORT_ORDER_NAME_AND_NUMBER",
        "autoCloseInvoicedProjects": False,
        "mustApproveRegisteredHours": False,
        "autoGenerateProjectNumber": True,
        "autoGenerateStartingNumber": 1,
        "projectNameScheme": "NAME_STANDARD",
        "onlyProjectMembersCanRegisterInfo": False,
    }


@dataclass
class Company:
    key: str  # the employee token
    company_id: int
    name: str
    organization_number: str = ""
    owner_id: int = 1  # the token owner's employee id
    #: Tripletex asks every new employee for a department once department accounting
    #: has been on (API-NOTES 4.3); the sandbox's companies all have a department.
    department_required: bool = True
    tables: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TABLES}
    )
    next_ids: dict[str, int] = field(default_factory=lambda: {t: 1 for t in TABLES})
    indexes: dict[tuple[str, str], dict[Any, list[int]]] = field(
        default_factory=lambda: {k: defaultdict(list) for k in INDEXED}
    )
    settings: dict[str, Any] = field(default_factory=default_settings)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_session_id: int = 1
    #: Bumped on every change; list caches and digests key on it.
    revision: int = 0
    #: Highest numbers ever used: number series continue after them, never reuse.
    project_number_high: int = 0
    customer_number_high: int = 10000
    #: Event subscriptions (API-NOTES 8.2) by id, with their write-only secrets.
    subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_subscription_id: int = 1

    def __getstate__(self) -> dict[str, Any]:
        """Queued events are not data: they leave with the request that made them."""
        return {k: v for k, v in self.__dict__.items() if k != "outbox"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"subscriptions": {}, "next_subscription_id": 1, **state})

    # -- events ---------------------------------------------------------------------------
    def emit(self, table: str, verb: str, rec_id: int) -> None:
        """Queue ``<table>.<verb>`` if an active subscription wants it (the hub delivers the
        queue after the request, off the request path)."""
        if table not in EVENT_TABLES or not self.subscriptions:
            return
        event = f"{table}.{verb}"
        if any(
            s["event"] == event and s["status"] == "ACTIVE" for s in self.subscriptions.values()
        ):
            self.__dict__.setdefault("outbox", []).append((table, verb, rec_id))

    def take_events(self) -> list[tuple[str, str, int]]:
        return self.__dict__.pop("outbox", None) or []

    @staticmethod
    def id_for(key: str) -> int:
        """A stable company id per token (keeps URLs and whoAmI stable across restarts)."""
        return 100000 + zlib.crc32(key.encode()) % 900000

    # -- reading --------------------------------------------------------------------------
    def get(self, table: str, rec_id: int) -> dict[str, Any] | None:
        return self.tables[table].get(rec_id)

    def lookup(self, table: str, fname: str, value: Any) -> list[int]:
        ids = self.indexes[(table, fname)].get(_index_value(table, fname, value))
        return list(ids) if ids else []

    # -- writing --------------------------------------------------------------------------
    def insert(
        self, table: str, rec: dict[str, Any], employee_id: int | None = None, at: float = 0.0
    ) -> dict[str, Any]:
        """Store a new record (keeps ``rec["id"]`` if given, as world loading does)."""
        rec_id = rec.get("id") or self.next_ids[table]
        self.next_ids[table] = max(self.next_ids[table], rec_id + 1)
        rec["id"] = rec_id
        rec["version"] = START_VERSION.get(table, 0)
        rec["_changes"] = [(at or time.time(), "CREATE", employee_id or self.owner_id)]
        self.tables[table][rec_id] = rec
        self._index(table, rec)
        self.touch(rec)
        self.emit(table, "create", rec_id)
        return rec

    def update(
        self, table: str, rec: dict[str, Any], values: dict[str, Any], employee_id: int | None
    ) -> bool:
        """Apply changed values; bumps ``version`` and logs an UPDATE only if something changed."""
        changed = {k: v for k, v in values.items() if rec.get(k, _MISSING) != v}
        if not changed:
            return False
        self._unindex(table, rec)
        rec.update(changed)
        self._index(table, rec)
        rec["version"] += 1
        rec["_changes"].append((time.time(), "UPDATE", employee_id or self.owner_id))
        self.touch(rec)
        self.emit(table, "update", rec["id"])
        return True

    def delete(self, table: str, rec_id: int) -> None:
        rec = self.tables[table].pop(rec_id)
        self._unindex(table, rec)
        self.revision += 1
        self.emit(table, "delete", rec_id)

    def touch(self, rec: dict[str, Any]) -> None:
        """Mark a record (or a parent whose children changed) as changed for digests."""
        self.revision += 1
        rec["_rev"] = self.revision

    def _index(self, table: str, rec: dict[str, Any]) -> None:
        for fname in _INDEXED_BY_TABLE[table]:
            value = _index_value(table, fname, rec.get(fname))
            if value is not None and value != "":
                self.indexes[(table, fname)][value].append(rec["id"])
        if table == "project" and str(rec.get("number") or "").isdigit():
            self.project_number_high = max(self.project_number_high, int(rec["number"]))
        elif table == "customer" and isinstance(rec.get("customerNumber"), int):
            self.customer_number_high = max(self.customer_number_high, rec["customerNumber"])

    def _unindex(self, table: str, rec: dict[str, Any]) -> None:
        for fname in _INDEXED_BY_TABLE[table]:
            value = _index_value(table, fname, rec.get(fname))
            ids = self.indexes[(table, fname)].get(value)
            if ids and rec["id"] in ids:
                ids.remove(rec["id"])
                if not ids:
                    del self.indexes[(table, fname)][value]

    # -- sessions -------------------------------------------------------------------------
    def new_session(self, token: str, expiration: str, consumer_token: str) -> dict[str, Any]:
        session = {
            "id": self.next_session_id,
            "token": token,
            "expirationDate": expiration,
            "consumerToken": consumer_token,
        }
        self.next_session_id += 1
        self.sessions[token] = session
        return session


_MISSING = object()


# -- seeds --------------------------------------------------------------------------------
def empty_company(key: str) -> Company:
    """``--seed empty``: one department and the token owner (EXTENDED), nothing else."""
    company = Company(key, Company.id_for(key), "Sandbox AS", "999999999")
    _seed_owner(company, department_name="Avdeling")
    return company


def _seed_owner(company: Company, department_name: str) -> None:
    dept = company.insert("department", {"name": department_name, "departmentNumber": ""})
    company.insert(
        "employee",
        {
            "firstName": "Ola",
            "lastName": "Nordmann",
            "email": f"ola.nordmann+{company.company_id}@example.no",
            "userType": "EXTENDED",
            "department": dept["id"],
        },
    )
    company.owner_id = 1


def _ref(value: Any) -> int | None:
    return value.get("id") if isinstance(value, dict) else None


def world_company(key: str, world: Any) -> Company:
    """The Tripletex side of a generated world, loaded in bulk (ids kept)."""
    # Hundreds of thousands of small dicts: the cyclic GC would rescan them over and over.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_world(key, world)
    finally:
        if enabled:
            gc.enable()


def _load_world(key: str, world: Any) -> Company:
    info = getattr(world, "company", None) or {}
    company = Company(
        key,
        Company.id_for(key),
        info.get("name") or "Sandbox AS",
        info.get("organization_number") or "",
    )
    side = world.tripletex
    now = time.time()
    for d in side.get("departments", []):
        company.insert("department", {**d}, at=now)
    if not company.tables["department"]:
        company.insert("department", {"name": "Avdeling", "departmentNumber": ""}, at=now)
    for e in side.get("employees", []):
        rec = {**e, "department": _ref(e.get("department"))}
        company.insert("employee", rec, at=now)
    if not company.tables["employee"]:
        _seed_owner(company, "Avdeling")
    company.owner_id = min(company.tables["employee"])
    for c in side.get("customers", []):
        rec = {k: v for k, v in c.items() if k not in ("postalAddress", "physicalAddress")}
        for kind in ("postalAddress", "physicalAddress"):
            address = dict(c.get(kind) or {})
            address.pop("id", None)
            rec[kind] = company.insert("address", address, at=now)["id"]
        company.insert("customer", rec, at=now)
    participants: list[dict[str, Any]] = []
    for p in side.get("projects", []):
        rec = {k: v for k, v in p.items() if k != "participants"}
        for ref in ("customer", "projectManager", "mainProject", "department"):
            rec[ref] = _ref(p.get(ref))
        company.insert("project", rec, at=now)
        for part in p.get("participants") or []:
            participants.append(
                {
                    "project": rec["id"],
                    "employee": _ref(part.get("employee")),
                    "adminAccess": bool(part.get("adminAccess")),
                }
            )
    for part in participants:
        company.insert("projectParticipant", part, at=now)
    return company
