"""The fields of each Svenn resource (svenn-api.md, "Resources") and their shape checks.

One table drives request validation, record defaults and world loading, so the
three can never disagree. Checks that need other records (references, number
uniqueness, parent rules) live in :mod:`.store`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sync_pipeline.sandbox.svenn.timestamps import parse_rfc3339

RESOURCES = ("projects", "customers", "employees")

#: Fields only the server sets; a body naming one is refused.
SERVER_FIELDS = ("id", "version", "created_at", "updated_at", "deleted_at")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Deliberately simple: one @, no spaces, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Field:
    """One writable field: its JSON type, nullability, limits and default."""

    kind: str  # string | email | date | datetime | enum | integer | id | integers | boolean
    nullable: bool = True
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    #: For integer ids: the resource whose live record it must name.
    ref: str | None = None

    def fresh_default(self) -> Any:
        return list(self.default) if isinstance(self.default, list) else self.default

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this field, or None."""
        if value is None:
            return None if self.nullable else "must not be null"
        kind = self.kind
        if kind in ("string", "email", "date", "datetime", "enum"):
            if not isinstance(value, str):
                return "must be a string"
            if self.min_length is not None and len(value) < self.min_length:
                return "must not be empty" if self.min_length == 1 else "too short"
            if self.max_length is not None and len(value) > self.max_length:
                return f"must be at most {self.max_length} characters"
            if kind == "email" and not _EMAIL.fullmatch(value):
                return "must be a valid e-mail address"
            if kind == "date" and parse_date(value) is None:
                return "must be a date YYYY-MM-DD"
            if kind == "datetime" and parse_rfc3339(value) is None:
                return "must be an RFC 3339 timestamp with offset"
            if kind == "enum" and value not in self.choices:
                return "must be one of " + ", ".join(self.choices)
            return None
        if kind == "integer":
            return None if _is_int(value) else "must be an integer"
        if kind == "id":
            return (
                None if _is_int(value) or isinstance(value, str) else "must be an integer or string"
            )
        if kind == "integers":
            if not isinstance(value, list) or not all(_is_int(v) for v in value):
                return "must be an array of integers"
            if len(set(value)) != len(value):
                return "must not repeat an id"
            return None
        if kind == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        raise AssertionError(kind)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_date(text: str) -> dt.date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


FIELDS: dict[str, dict[str, Field]] = {
    "projects": {
        "display_id": Field("string"),
        "name": Field("string", nullable=False, required=True, min_length=1, max_length=255),
        "description": Field("string"),
        "start_date": Field("date"),
        "end_date": Field("date"),
        "status": Field("enum", nullable=False, choices=("active", "completed"), default="active"),
        "parent_id": Field("integer", ref="projects"),
        "customer_id": Field("integer", ref="customers"),
        "project_manager_id": Field("integer", ref="employees"),
        "member_ids": Field("integers", nullable=False, default=[], ref="employees"),
    },
    "customers": {
        "customer_number": Field("string"),
        "name": Field("string", nullable=False, required=True, min_length=1, max_length=255),
        "email": Field("email"),
        "phone": Field("string"),
        "organization_number": Field("string"),
        "is_active": Field("boolean", nullable=False, default=True),
    },
    "employees": {
        "employee_number": Field("string"),
        "first_name": Field("string", nullable=False, required=True, min_length=1, max_length=100),
        "last_name": Field("string"),
        "email": Field("email"),
        "phone": Field("string"),
        "is_active": Field("boolean", nullable=False, default=True),
    },
}

#: The field that must be unique among live records (409 ``duplicate_number``).
UNIQUE_FIELD = {"customers": "customer_number", "employees": "employee_number"}


def shape_problems(resource: str, body: dict[str, Any], *, create: bool) -> dict[str, str]:
    """Field → problem for everything wrong with a create or patch body on its own."""
    spec = FIELDS[resource]
    problems: dict[str, str] = {}
    for name, value in body.items():
        field = spec.get(name)
        if field is None:
            problems[name] = (
                "is set by the server" if name in SERVER_FIELDS else "is not a field of " + resource
            )
        elif (problem := field.problem(value)) is not None:
            problems[name] = problem
    if create:
        for name, field in spec.items():
            if field.required and name not in body:
                problems[name] = "is required"
    return problems


#: One row of the integration error log (``PUT /integrations/tripletex/errors``).
ERROR_LOG_FIELDS: dict[str, Field] = {
    "code": Field("string", nullable=False, required=True, min_length=1),
    "severity": Field("string", nullable=False, required=True, min_length=1),
    "message": Field("string", nullable=False, required=True),
    "entity": Field("string"),
    "record_id": Field("id"),
    "record_label": Field("string"),
    "first_seen_at": Field("datetime", nullable=False, required=True),
    "last_seen_at": Field("datetime", nullable=False, required=True),
}


def error_log_problems(body: Any) -> dict[str, str]:
    """Field path → problem for an error-log body ``{"errors": [...]}``."""
    if not isinstance(body, dict):
        return {"": "must be an object with 'errors'"}
    problems = {f"{k}": "is not a field of the error log" for k in body if k != "errors"}
    errors = body.get("errors")
    if not isinstance(errors, list):
        problems["errors"] = "is required" if "errors" not in body else "must be an array"
        return problems
    for i, entry in enumerate(errors):
        if not isinstance(entry, dict):
            problems[f"errors[{i}]"] = "must be an object"
            continue
        for name, value in entry.items():
            field = ERROR_LOG_FIELDS.get(name)
            if field is None:
                problems[f"errors[{i}].{name}"] = "is not a field of an error"
            elif (problem := field.problem(value)) is not None:
                problems[f"errors[{i}].{name}"] = problem
        for name, field in ERROR_LOG_FIELDS.items():
            if field.required and name not in entry:
                problems[f"errors[{i}].{name}"] = "is required"
    return problems
