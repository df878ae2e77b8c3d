"""List endpoints: filters, sorting, paging and the conditional-GET digest (API-NOTES 3, A2).

Paging quirk (API-NOTES 3.1, PYTX-PAGE): ``fullResultSize`` is a has-more signal, not a
total. Observed with ``from=0``: min(total, count + 1). Our choice for any ``from``:
``min(total, from + count + 1)`` — it equals the observation at ``from=0`` and still says
"more after this page" (> from + count) exactly when there is more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sync_pipeline.sandbox.tripletex import errors as E
from sync_pipeline.sandbox.tripletex.errors import ApiError
from sync_pipeline.sandbox.tripletex.models import MODELS, REF
from sync_pipeline.sandbox.tripletex.render import Renderer
from sync_pipeline.sandbox.tripletex.store import OSLO, Company
from sync_pipeline.sandbox.tripletex.validation import may_manage_projects

RECENTLY_CLOSED_SECONDS = 92 * 24 * 3600  # "the last 3 months"
NO_DIGEST = "'If-None-Match' header not specified"
_ID_LIST = re.compile(r"^\s*\d+\s*(,\s*\d+\s*)*$")

Record = dict[str, Any]
Predicate = Callable[[Record], bool]


def id_list(name: str, text: str) -> list[int]:
    """A comma-separated list of positive integers, else 422/12000 (OBSERVED, API-NOTES 6.3)."""
    if not _ID_LIST.match(text) or any(int(p) <= 0 for p in text.split(",")):
        raise ApiError(422, 12000, E.ID_LIST.format(name))
    return [int(p) for p in text.split(",")]


def boolean(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ApiError(422, 21000, f"'{name}': Ugyldig verdi for boolsk parameter: {text}")
    return value == "true"


def integer(name: str, text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(422, 21000, f"'{name}': Ugyldig tallverdi: {text}") from None
    if value < 0:
        raise ApiError(422, 21000, f"'{name}': Verdien kan ikke være negativ.")
    return value


def _contains(field: str, needle: str) -> Predicate:
    needle = needle.lower()
    return lambda r: needle in str(r.get(field) or "").lower()


def _equals(field: str, value: Any) -> Predicate:
    return lambda r: (r.get(field) or "") == value


def _in(field: str, ids: list[int]) -> Predicate:
    wanted = set(ids)
    return lambda r: r.get(field) in wanted


def _bool(field: str, value: bool) -> Predicate:
    return lambda r: bool(r.get(field)) == value


@dataclass
class Query:
    """Candidate ids (from an index, or None for a scan) and predicates."""

    candidates: set[int] | None = None
    predicates: list[Predicate] | None = None

    def narrow(self, ids: Iterable[int]) -> None:
        ids = set(ids)
        self.candidates = ids if self.candidates is None else self.candidates & ids

    def where(self, predicate: Predicate) -> None:
        self.predicates = [*(self.predicates or []), predicate]


def _project_query(company: Company, params: dict[str, str]) -> Query:
    q = Query()
    if "id" in params:
        q.narrow(id_list("id", params["id"]))
    if "number" in params:
        q.narrow(company.lookup("project", "number", params["number"]))
    if "name" in params:
        q.where(_contains("name", params["name"]))
    for name, field in (
        ("projectManagerId", "projectManager"),
        ("departmentId", "department"),
    ):
        if name in params:
            q.where(_in(field, id_list(name, params[name])))
    if "customerId" in params:
        customer_id = id_list("customerId", params["customerId"])[0]
        q.narrow(company.lookup("project", "customer", customer_id))
    if "employeeInProjectId" in params:
        wanted = set(id_list("employeeInProjectId", params["employeeInProjectId"]))
        q.narrow(
            rec["project"]
            for rec in company.tables["projectParticipant"].values()
            if rec["employee"] in wanted
        )
    for name in ("isOffer", "isFixedPrice"):
        if name in params:
            q.where(_bool(name, boolean(name, params[name])))
    if "isClosed" in params:
        closed = boolean("isClosed", params["isClosed"])
        recent = "includeRecentlyClosed" in params and boolean(
            "includeRecentlyClosed", params["includeRecentlyClosed"]
        )
        if recent and not closed:
            # With isClosed=false, also projects closed within the last 3 months (A2).
            horizon = time.time() - RECENTLY_CLOSED_SECONDS
            q.where(lambda r: not r.get("isClosed") or (r.get("_closedAt") or 0) >= horizon)
        else:
            q.where(_bool("isClosed", closed))
    if "externalAccountsNumber" in params:
        q.where(_contains("externalAccountsNumber", params["externalAccountsNumber"]))
    for name, field, inclusive in (
        ("startDateFrom", "startDate", True),
        ("startDateTo", "startDate", False),
        ("endDateFrom", "endDate", True),
        ("endDateTo", "endDate", False),
    ):
        if name in params:
            bound = params[name]
            if inclusive:
                q.where(lambda r, f=field, b=bound: bool(r.get(f)) and r[f] >= b)
            else:
                q.where(lambda r, f=field, b=bound: bool(r.get(f)) and r[f] < b)
    return q


def _customer_query(company: Company, params: dict[str, str]) -> Query:
    q = Query()
    if "id" in params:
        q.narrow(id_list("id", params["id"]))
    if "customerAccountNumber" in params:
        numbers = id_list("customerAccountNumber", params["customerAccountNumber"])
        q.narrow(i for n in numbers for i in company.lookup("customer", "customerNumber", n))
    for name in ("organizationNumber", "email", "invoiceEmail", "phoneNumberMobile"):
        if name in params:
            q.where(_equals(name, params[name]))
    if "customerName" in params:
        q.where(_contains("name", params["customerName"]))
    if "accountManagerId" in params:
        q.where(_in("accountManager", id_list("accountManagerId", params["accountManagerId"])))
    # isInactive defaults to false: inactive customers are hidden unless asked for (A2).
    inactive = boolean("isInactive", params["isInactive"]) if "isInactive" in params else False
    q.where(_bool("isInactive", inactive))
    if "changedSince" in params:
        since = moment("changedSince", params["changedSince"])
        q.where(lambda r: r["_changes"][-1][0] >= since)
    return q


def moment(name: str, text: str) -> float:
    """A date or date-time as epoch seconds; without an offset it is Oslo time (API-NOTES 1).

    The format of ``changedSince`` is undocumented (API-NOTES 3.7): ISO dates and date-times,
    with ``Z`` or an offset or none, are accepted; the comparison is inclusive (INFERRED).
    """
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, 21000, f"'{name}': Ugyldig dato: {text}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=OSLO)
    return parsed.timestamp()


def _employee_query(company: Company, params: dict[str, str]) -> Query:
    q = Query()
    if "id" in params:
        q.narrow(id_list("id", params["id"]))
    if "employeeNumber" in params:
        q.where(_equals("employeeNumber", params["employeeNumber"]))
    for name in ("firstName", "lastName", "email"):
        if name in params:
            q.where(_contains(name, params[name]))
    if "departmentId" in params:
        q.where(_in("department", id_list("departmentId", params["departmentId"])))
    only_contacts = "onlyContacts" in params and boolean("onlyContacts", params["onlyContacts"])
    include_contacts = "includeContacts" in params and boolean(
        "includeContacts", params["includeContacts"]
    )
    if only_contacts:
        q.where(lambda r: bool(r.get("isContact")))
    elif not include_contacts:
        q.where(lambda r: not r.get("isContact"))
    if "assignableProjectManagers" in params and boolean(
        "assignableProjectManagers", params["assignableProjectManagers"]
    ):
        q.where(may_manage_projects)
    if "onlyProjectManagers" in params and boolean(
        "onlyProjectManagers", params["onlyProjectManagers"]
    ):
        managers = {p.get("projectManager") for p in company.tables["project"].values()}
        q.where(lambda r: r["id"] in managers)
    if "hasSystemAccess" in params:
        access = boolean("hasSystemAccess", params["hasSystemAccess"])
        q.where(lambda r: (r.get("userType") != "NO_ACCESS") == access)
    return q


def _department_query(company: Company, params: dict[str, str]) -> Query:
    q = Query()
    if "id" in params:
        q.narrow(id_list("id", params["id"]))
    for name in ("name", "departmentNumber"):
        if name in params:
            q.where(_contains(name, params[name]))
    if "departmentManagerId" in params:
        ids = id_list("departmentManagerId", params["departmentManagerId"])
        q.where(_in("departmentManager", ids))
    if "isInactive" in params:  # unset means both (A2)
        q.where(_bool("isInactive", boolean("isInactive", params["isInactive"])))
    return q


QUERIES = {
    "project": _project_query,
    "customer": _customer_query,
    "employee": _employee_query,
    "department": _department_query,
}


def select(
    company: Company,
    table: str,
    params: dict[str, str],
    sorting: list[tuple[list[str], bool]],
) -> list[Record]:
    """All records matching the filters, in the requested order (default: by id)."""
    q = QUERIES[table](company, params)
    rows = company.tables[table]
    if q.candidates is None:
        records: Iterable[Record] = rows.values()
    else:
        records = (rows[i] for i in sorted(q.candidates) if i in rows)
    if q.predicates:
        preds = q.predicates
        records = [r for r in records if all(p(r) for p in preds)]
    else:
        records = list(records)
    for path, desc in reversed(sorting):
        records.sort(key=_sort_key_for(company, table, path), reverse=desc)
    return records


def _sort_key_for(company: Company, table: str, path: list[str]) -> Callable[[Record], Any]:
    def key(rec: Record) -> Any:
        current: Any = rec
        model = MODELS[table]
        for i, part in enumerate(path):
            field = model.fields[part]
            if part == "displayName" and i == len(path) - 1:
                current = Renderer(company, "")._value(model, current, part)
            else:
                current = current.get(part)
            if i < len(path) - 1:
                if current is None or field.kind != REF or field.target not in company.tables:
                    current = None
                    break
                model = MODELS[field.target]
                current = company.get(field.target, current)
                if current is None:
                    break
        if current is None or current == "":
            return (0, 0, "")
        if isinstance(current, bool | int | float):
            return (1, current, "")
        return (2, 0, str(current).lower())

    return key


def digest(fields_text: str, total: int, page: list[Record]) -> str:
    """Checksum of a page: ids and change revisions (children included) and the selection."""
    h = hashlib.sha1(f"{fields_text}|{total}".encode())
    for rec in page:
        h.update(f"|{rec['id']}:{rec.get('_rev', 0)}".encode())
    return h.hexdigest()


def full_result_size(total: int, start: int, count: int) -> int:
    return min(total, start + count + 1)


def too_large(limit: int) -> ApiError:
    shown = f"{limit:,}".replace(",", ".")
    return ApiError(422, 23000, f"Result set too large. Limit of {shown} reached.")
