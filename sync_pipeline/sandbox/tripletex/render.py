"""Records → Tripletex JSON: defaults, computed read-only fields, ``{id, url}`` stubs.

References render as ``{"id": N, "url": "<host>/v2/<path>/N"}`` without scheme
(API-NOTES 3.2); a selection like ``customer(name)`` expands the referenced record.
"""

from __future__ import annotations

from typing import Any

from sync_pipeline.sandbox.tripletex.fields import Selection
from sync_pipeline.sandbox.tripletex.models import (
    CHANGES,
    MODELS,
    REF,
    REFS,
    TABLES,
    Model,
)
from sync_pipeline.sandbox.tripletex.store import Company, oslo_timestamp

URL_PATHS = {"projectParticipant": "project/participant"}


def project_display_name(rec: dict[str, Any]) -> str:
    number = rec.get("number") or ""
    return f"{number} {rec.get('name') or ''}".strip()


def employee_display_name(rec: dict[str, Any]) -> str:
    return f"{rec.get('firstName') or ''} {rec.get('lastName') or ''}".strip()


class Renderer:
    """Renders the records of one company for one request (``host`` from the request)."""

    def __init__(self, company: Company, host: str):
        self.company = company
        self.base = f"{host}/v2/"

    def stub(self, path: str, rec_id: int) -> dict[str, Any]:
        return {"id": rec_id, "url": f"{self.base}{URL_PATHS.get(path, path)}/{rec_id}"}

    def render(self, model: Model, rec: dict[str, Any], selection: Selection) -> dict[str, Any]:
        out: dict[str, Any] = {}
        company = self.company
        for op, name, arg in _plan(model, selection):
            if op == _OP_PLAIN:
                value = rec.get(name)
                out[name] = arg if value is None else value
            elif op == _OP_COMPUTED:
                out[name] = arg(company, rec)
            elif op == _OP_URL:
                out[name] = f"{self.base}{arg}/{rec['id']}"
            elif op == _OP_REF:
                value = rec.get(name)
                out[name] = None if value is None else self._ref(arg[0], value, arg[1])
            elif op == _OP_REFS:
                target, sub, compute = arg
                values = compute(company, rec) if compute else rec.get(name)
                out[name] = [self._ref(target, v, sub) for v in values or ()]
            else:  # changes
                out[name] = [
                    _pick(
                        {"employeeId": emp, "timestamp": oslo_timestamp(ts), "changeType": kind},
                        arg,
                    )
                    for ts, kind, emp in rec.get("_changes", ())
                ]
        return out

    def _ref(self, target: str, rec_id: int, sub: Selection | None) -> dict[str, Any]:
        if sub is None or target not in TABLES:
            return self.stub(target, rec_id)
        rec = self.company.get(target, rec_id)
        if rec is None:
            return self.stub(target, rec_id)
        return self.render(MODELS[target], rec, sub)

    def _value(self, model: Model, rec: dict[str, Any], name: str) -> Any:
        """A stored value, or a computed read-only one."""
        if name == "url":
            return f"{self.base}{URL_PATHS.get(model.name, model.name)}/{rec['id']}"
        compute = _COMPUTED.get((model.name, name))
        if compute is not None:
            return compute(self.company, rec)
        return rec.get(name)


_OP_PLAIN, _OP_COMPUTED, _OP_URL, _OP_REF, _OP_REFS, _OP_CHANGES = range(6)
_PLANS: dict[tuple[str, int], tuple[Selection, list[tuple[int, str, Any]]]] = {}


def _plan(model: Model, selection: Selection) -> list[tuple[int, str, Any]]:
    """What to do per selected field, compiled once per (model, selection) object."""
    key = (model.name, id(selection))
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is selection:
        return cached[1]
    plan: list[tuple[int, str, Any]] = []
    for name, sub in selection.items():
        f = model.fields[name]
        compute = _COMPUTED.get((model.name, name))
        if name == "url":
            plan.append((_OP_URL, name, URL_PATHS.get(model.name, model.name)))
        elif f.kind == REF:
            plan.append((_OP_REF, name, (f.target, sub)))
        elif f.kind == REFS:
            plan.append((_OP_REFS, name, (f.target, sub, compute)))
        elif f.kind == CHANGES:
            plan.append((_OP_CHANGES, name, sub))
        elif compute is not None:
            plan.append((_OP_COMPUTED, name, compute))
        else:
            plan.append((_OP_PLAIN, name, f.default))
    if len(_PLANS) > 1024:
        _PLANS.clear()
    _PLANS[key] = (selection, plan)
    return plan


def _pick(obj: dict[str, Any], sub: Selection | None) -> dict[str, Any]:
    return obj if not sub else {k: v for k, v in obj.items() if k in sub}


def _project_chain(company: Company, rec: dict[str, Any]) -> list[dict[str, Any]]:
    chain, seen = [rec], {rec["id"]}
    while chain[-1].get("mainProject") and chain[-1]["mainProject"] not in seen:
        parent = company.get("project", chain[-1]["mainProject"])
        if parent is None:
            break
        seen.add(parent["id"])
        chain.append(parent)
    return chain


def _manager_name_and_number(company: Company, rec: dict[str, Any]) -> str:
    manager = company.get("employee", rec.get("projectManager") or 0)
    if manager is None:
        return ""
    number = manager.get("employeeNumber") or ""
    return (
        f"{employee_display_name(manager)} ({number})" if number else employee_display_name(manager)
    )


def _customer_name(company: Company, rec: dict[str, Any]) -> str:
    customer = company.get("customer", rec.get("customer") or 0)
    return customer.get("name", "") if customer else ""


def _customer_display_name(_: Company, rec: dict[str, Any]) -> str:
    number = rec.get("customerNumber")
    name = rec.get("name") or ""
    return f"{name} ({number})" if number else name


def _department_display_name(_: Company, rec: dict[str, Any]) -> str:
    number = rec.get("departmentNumber") or ""
    return f"{number} {rec.get('name') or ''}".strip()


def _address_string(_: Company, rec: dict[str, Any]) -> str:
    place = f"{rec.get('postalCode') or ''} {rec.get('city') or ''}".strip()
    return ", ".join(p for p in (rec.get("addressLine1") or "", place) if p)


_COMPUTED = {
    ("project", "displayName"): lambda c, r: project_display_name(r),
    ("project", "participants"): lambda c, r: c.lookup("projectParticipant", "project", r["id"]),
    ("project", "numberOfProjectParticipants"): lambda c, r: len(
        c.lookup("projectParticipant", "project", r["id"])
    ),
    ("project", "numberOfSubProjects"): lambda c, r: len(
        c.lookup("project", "mainProject", r["id"])
    ),
    ("project", "hierarchyLevel"): lambda c, r: len(_project_chain(c, r)) - 1,
    ("project", "hierarchyNameAndNumber"): lambda c, r: " / ".join(
        project_display_name(p) for p in reversed(_project_chain(c, r))
    ),
    ("project", "customerName"): _customer_name,
    ("project", "projectManagerNameAndNumber"): _manager_name_and_number,
    ("customer", "displayName"): _customer_display_name,
    ("customer", "isCustomer"): lambda c, r: True,
    ("employee", "displayName"): lambda c, r: employee_display_name(r),
    ("employee", "companyId"): lambda c, r: c.company_id,
    ("employee", "allowInformationRegistration"): lambda c, r: r.get("userType") != "NO_ACCESS",
    ("department", "displayName"): _department_display_name,
    ("address", "displayName"): _address_string,
    ("address", "addressAsString"): _address_string,
    ("address", "displayNameInklMatrikkel"): _address_string,
}
