"""Request bodies → stored values, with Tripletex's 422 validation messages.

Every problem of a body is collected (not just the first) so one 422 lists them all,
as Tripletex does. Read-only properties are accepted and ignored (API-NOTES 4: POST
/customer with ``isCustomer`` succeeds) — never stored; unknown ones are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sync_pipeline.sandbox.tripletex import errors as E
from sync_pipeline.sandbox.tripletex.errors import vmsg
from sync_pipeline.sandbox.tripletex.models import (
    ADDRESS,
    BOOL,
    DATE,
    ENUM,
    INT,
    MODELS,
    NUM,
    PARTICIPANT,
    REF,
    REFS,
    STR,
    STRS,
    TABLES,
    Model,
)
from sync_pipeline.sandbox.tripletex.render import employee_display_name
from sync_pipeline.sandbox.tripletex.store import Company

# Tripletex refuses non-ASCII addresses ("æøå" → "Ugyldig format.", API-NOTES 4.3).
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Fields the sandbox computes; writes to them are accepted and ignored like read-only ones.
COMPUTED = {("customer", "displayName")}
# Inline sub-objects created or updated with their parent (API-NOTES 4.2, 5.6).
INLINE_ADDRESSES = {
    ("customer", "postalAddress"),
    ("customer", "physicalAddress"),
    ("employee", "address"),
    ("project", "deliveryAddress"),
}
# INFERRED: the text for adding an employee to a project twice was not found in the sources.
ALREADY_PARTICIPANT = "Den ansatte er allerede deltaker i prosjektet."


@dataclass
class Batch:
    """Keys claimed by earlier items of the same request (``/list`` bodies)."""

    project_numbers: set[str] = field(default_factory=set)
    customer_numbers: set[int] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    participants: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class Parsed:
    values: dict[str, Any]
    addresses: dict[str, dict[str, Any]]  # field → address values (+ "id" to update one)
    participants: list[dict[str, Any]]  # inline project participants
    messages: list[dict[str, Any]]


def is_email(text: str) -> bool:
    return bool(EMAIL_RE.match(text))


def _valid_date(text: Any) -> bool:
    if not isinstance(text, str) or not DATE_RE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _convert(f, value: Any, company: Company, name: str, msgs: list) -> tuple[bool, Any]:
    """(ok, stored value) for one property of a known, writable field."""
    kind = f.kind
    if kind == STR:
        if value is None:
            return True, None
        if not isinstance(value, str):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        if f.max_len is not None and not f.min_len <= len(value) <= f.max_len:
            msgs.append(vmsg(name, E.length_message(f.min_len, f.max_len)))
            return False, None
        return True, value
    if kind == INT:
        if value is None:
            return True, None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, value
    if kind == NUM:
        if value is None:
            return True, None
        if isinstance(value, bool) or not isinstance(value, int | float):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, value
    if kind == BOOL:
        if value is None:
            return True, False
        if not isinstance(value, bool):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, value
    if kind == DATE:
        if value is None or value == "":
            return True, None
        if not _valid_date(value):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, value
    if kind == ENUM:
        if value is None:
            return True, None
        if value not in f.enum:
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, value
    if kind == REF:
        if value is None:
            return True, None
        rec_id = value.get("id") if isinstance(value, dict) else None
        if isinstance(rec_id, str) and rec_id.isdigit():
            rec_id = int(rec_id)
        if isinstance(rec_id, bool) or not isinstance(rec_id, int) or rec_id <= 0:
            msgs.append(vmsg(f"{name}.id", E.REQUIRED if rec_id is None else E.WRONG_TYPE))
            return False, None
        if f.target in TABLES and company.get(f.target, rec_id) is None:
            msgs.append(vmsg(f"{name}.id", E.NOT_FOUND_REF))
            return False, None
        return True, rec_id
    if kind == STRS:
        if value is None:
            return True, []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            msgs.append(vmsg(name, E.WRONG_TYPE))
            return False, None
        return True, list(value)
    return False, None  # other arrays: not kept by the sandbox (documented in the package)


def parse(
    model: Model,
    body: Any,
    company: Company,
    *,
    creating: bool,
    prefix: str = "",
) -> Parsed:
    """Check property names and types of one object body; no entity rules yet."""
    parsed = Parsed({}, {}, [], [])
    msgs = parsed.messages
    if not isinstance(body, dict):
        msgs.append(vmsg(prefix.rstrip(".") or None, E.WRONG_TYPE))
        return parsed
    for key, value in body.items():
        name = prefix + key
        f = model.fields.get(key)
        if f is None:
            msgs.append(vmsg(name, E.UNKNOWN_PROPERTY))
            continue
        if key in ("id", "version"):
            if creating and value is not None and not prefix:
                msgs.append(vmsg(name, E.ID_ON_CREATE))
            continue
        if f.read_only or (model.name, key) in COMPUTED:
            continue
        if (model.name, key) in INLINE_ADDRESSES:
            if value is None:
                parsed.values[key] = None
                continue
            sub = parse(ADDRESS, value, company, creating=False, prefix=f"{name}.")
            msgs.extend(sub.messages)
            address_id = value.get("id") if isinstance(value, dict) else None
            if address_id is not None and company.get("address", address_id) is None:
                msgs.append(vmsg(f"{name}.id", E.NOT_FOUND_REF))
            parsed.addresses[key] = {**sub.values, **({"id": address_id} if address_id else {})}
            continue
        if model.name == "project" and key == "participants":
            parsed.participants.extend(_inline_participants(value, company, name, msgs))
            continue
        if f.kind == REFS:
            continue  # arrays of objects the sandbox does not model are not kept
        ok, stored = _convert(f, value, company, name, msgs)
        if ok:
            parsed.values[key] = stored
    return parsed


def _inline_participants(value: Any, company: Company, name: str, msgs: list) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        msgs.append(vmsg(name, E.WRONG_TYPE))
        return []
    out = []
    for item in value:
        sub = parse(PARTICIPANT, item, company, creating=False, prefix=f"{name}.")
        msgs.extend(sub.messages)
        if not sub.messages:
            if sub.values.get("employee") is None:
                msgs.append(vmsg(f"{name}.employee.id", E.REQUIRED))
            else:
                out.append(sub.values)
    return out


# -- entity rules ----------------------------------------------------------------------------
def check_project(
    parsed: Parsed, company: Company, existing: dict | None, batch: Batch
) -> list[dict]:
    v, msgs = parsed.values, parsed.messages
    creating = existing is None

    def given(key: str) -> bool:
        return creating or key in v

    if given("name") and not v.get("name"):
        msgs.append(vmsg("name", E.REQUIRED))
    if given("startDate") and not v.get("startDate") and not _has_error(msgs, "startDate"):
        msgs.append(vmsg("startDate", E.REQUIRED))
    if given("projectManager") and v.get("projectManager") is None:
        if not _has_error(msgs, "projectManager.id"):
            msgs.append(vmsg("", E.MANAGER_REQUIRED))
    elif "projectManager" in v:
        manager = company.get("employee", v["projectManager"])
        if manager is not None and not may_manage_projects(manager):
            msgs.append(
                vmsg(
                    "projectManager.id",
                    E.MANAGER_NOT_ALLOWED.format(employee_display_name(manager)),
                )
            )
    number = v.get("number")
    if number:
        holders = [i for i in company.lookup("project", "number", number) if not _is(existing, i)]
        if holders or number in batch.project_numbers:
            msgs.append(vmsg("number", E.NUMBER_IN_USE))
        batch.project_numbers.add(number)
    main = v.get("mainProject")
    if main is not None and existing is not None and main == existing["id"]:
        msgs.append(vmsg("mainProject.id", E.WRONG_TYPE))
    return msgs


def check_customer(
    parsed: Parsed, company: Company, existing: dict | None, batch: Batch
) -> list[dict]:
    v, msgs = parsed.values, parsed.messages
    if (existing is None or "name" in v) and not v.get("name"):
        _require(msgs, "name", E.REQUIRED)
    for key in ("email", "overdueNoticeEmail"):
        if v.get(key) and not is_email(v[key]):
            msgs.append(vmsg(key, E.BAD_FORMAT))
    # Several invoice addresses separated by ";" are allowed (CL 2.39.2).
    invoice = [p.strip() for p in (v.get("invoiceEmail") or "").split(";") if p.strip()]
    if not all(is_email(p) for p in invoice):
        msgs.append(vmsg("invoiceEmail", E.BAD_FORMAT))
    number = v.get("customerNumber")
    if number:
        if number < 0:
            msgs.append(vmsg("customerNumber", E.WRONG_TYPE))
        holders = [
            i for i in company.lookup("customer", "customerNumber", number) if not _is(existing, i)
        ]
        if holders or number in batch.customer_numbers:
            msgs.append(vmsg("customerNumber", E.NUMBER_IN_USE))
        batch.customer_numbers.add(number)
    return msgs


def check_employee(
    parsed: Parsed, company: Company, existing: dict | None, batch: Batch
) -> list[dict]:
    v, msgs = parsed.values, parsed.messages
    creating = existing is None
    for key in ("firstName", "lastName"):
        if (creating or key in v) and v.get(key) is None and not _has_error(msgs, key):
            msgs.append(vmsg(key, E.NOT_NULL))
    if (creating or "userType" in v) and not v.get("userType") and not _has_error(msgs, "userType"):
        msgs.append(vmsg("userType", E.USER_TYPE_REQUIRED))
    user_type = v.get("userType") or (existing or {}).get("userType")
    email = v.get("email")
    if email:
        if not is_email(email):
            msgs.append(vmsg("email", E.BAD_FORMAT))
        else:
            key = email.strip().lower()
            holders = [i for i in company.lookup("employee", "email", key) if not _is(existing, i)]
            if holders or key in batch.emails:
                msgs.append(vmsg("email", E.EMAIL_TAKEN))
            batch.emails.add(key)
    elif (creating or "email" in v) and user_type and user_type != "NO_ACCESS":
        _require(msgs, "email", E.EMAIL_REQUIRED)
    if creating and company.department_required and v.get("department") is None:
        _require(msgs, "department.id", E.REQUIRED)
    # INFERRED: no source shows Tripletex refusing a duplicate employeeNumber (API-NOTES 4.3
    # lists the e-mail as the only unique employee field), so the sandbox accepts one: the
    # sync must never rely on the API to stop a second create of the same employee (G5).
    return msgs


def check_participant(
    parsed: Parsed, company: Company, existing: dict | None, batch: Batch
) -> list[dict]:
    v, msgs = parsed.values, parsed.messages
    if existing is not None:  # PUT: only adminAccess may change; project/employee stay
        for key in ("project", "employee"):
            if key in v and v[key] != existing[key]:
                msgs.append(vmsg(f"{key}.id", E.WRONG_TYPE))
        return msgs
    for key in ("project", "employee"):
        if v.get(key) is None:
            _require(msgs, f"{key}.id", E.REQUIRED)
    if v.get("project") and v.get("employee"):
        taken = {
            company.get("projectParticipant", pid)["employee"]
            for pid in company.lookup("projectParticipant", "project", v["project"])
        }
        pair = (v["project"], v["employee"])
        if v["employee"] in taken or pair in batch.participants:
            msgs.append(vmsg("employee.id", ALREADY_PARTICIPANT))
        batch.participants.add(pair)
    return msgs


CHECKS = {
    "project": check_project,
    "customer": check_customer,
    "employee": check_employee,
    "projectParticipant": check_participant,
}


def may_manage_projects(employee: dict[str, Any]) -> bool:
    """In the sandbox, EXTENDED and STANDARD users may manage projects; NO_ACCESS may not."""
    return employee.get("userType") in ("EXTENDED", "STANDARD")


def validate(
    table: str,
    body: Any,
    company: Company,
    existing: dict | None = None,
    batch: Batch | None = None,
) -> Parsed:
    parsed = parse(MODELS[table], body, company, creating=existing is None)
    CHECKS[table](parsed, company, existing, batch or Batch())
    return parsed


def _is(existing: dict | None, rec_id: int) -> bool:
    return existing is not None and existing["id"] == rec_id


def _require(msgs: list[dict], name: str, message: str) -> None:
    """Report a missing value unless the field already has an error (e.g. a wrong type)."""
    if not _has_error(msgs, name):
        msgs.append(vmsg(name, message))


def _has_error(msgs: list[dict], name: str) -> bool:
    return any(m["field"] == name for m in msgs)
