"""Pydantic models of the Svenn API v1, for its OpenAPI document.

Requests are validated by :mod:`.fields` (one table for rules, defaults and
loading) and responses are serialised from the stored records directly, both
for speed; these models only *describe* the same shapes. A test checks them
against svenn-api.md and schemathesis checks the server against them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Name255 = Annotated[str, Field(min_length=1, max_length=255)]
Name100 = Annotated[str, Field(min_length=1, max_length=100)]
Email = Annotated[str, Field(json_schema_extra={"format": "email"})]
IdList = Annotated[list[int], Field(json_schema_extra={"uniqueItems": True})]
Status = Literal["active", "completed"]


def _patch_schema(schema: dict[str, Any]) -> None:
    """A patch names only the fields to change: no defaults, nothing required."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    schema.pop("required", None)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)


class _Record(BaseModel):
    id: int
    version: int = Field(ge=1)
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None


# -- projects -----------------------------------------------------------------------------------
class ProjectCreate(_Body):
    display_id: str | None = Field(None, description="The project number; not unique.")
    name: Name255
    description: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = Field(None, description="Not before start_date.")
    status: Status = Field("active", description='"Under arbeid" (active) / "Ferdig" (completed).')
    parent_id: int | None = Field(None, description="A live top-level project: a sub-project.")
    customer_id: int | None = Field(None, description="A live customer.")
    project_manager_id: int | None = Field(None, description="A live employee.")
    member_ids: IdList = Field(
        default_factory=list, description="Live employees with access to the project."
    )


class ProjectPatch(_Patch):
    display_id: str | None = None
    name: Name255 = None
    description: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    status: Status = None
    parent_id: int | None = None
    customer_id: int | None = None
    project_manager_id: int | None = None
    member_ids: IdList = None


class Project(_Record):
    display_id: str | None
    name: str
    description: str | None
    start_date: dt.date | None
    end_date: dt.date | None
    status: Status
    parent_id: int | None
    customer_id: int | None
    project_manager_id: int | None
    member_ids: list[int]


# -- customers ----------------------------------------------------------------------------------
class CustomerCreate(_Body):
    customer_number: str | None = Field(
        None, description="The customer ID; unique among live customers (409)."
    )
    name: Name255
    email: Email | None = None
    phone: str | None = None
    organization_number: str | None = None
    is_active: bool = True


class CustomerPatch(_Patch):
    customer_number: str | None = None
    name: Name255 = None
    email: Email | None = None
    phone: str | None = None
    organization_number: str | None = None
    is_active: bool = None


class Customer(_Record):
    customer_number: str | None
    name: str
    email: str | None
    phone: str | None
    organization_number: str | None
    is_active: bool


# -- employees ----------------------------------------------------------------------------------
class EmployeeCreate(_Body):
    employee_number: str | None = Field(
        None, description="The employee ID; unique among live employees (409)."
    )
    first_name: Name100
    last_name: str | None = None
    email: Email | None = None
    phone: str | None = None
    is_active: bool = True


class EmployeePatch(_Patch):
    employee_number: str | None = None
    first_name: Name100 = None
    last_name: str | None = None
    email: Email | None = None
    phone: str | None = None
    is_active: bool = None


class Employee(_Record):
    employee_number: str | None
    first_name: str
    last_name: str | None
    email: str | None
    phone: str | None
    is_active: bool


# -- lists ----------------------------------------------------------------------------------------
class ProjectList(BaseModel):
    data: list[Project]
    next_cursor: str | None


class CustomerList(BaseModel):
    data: list[Customer]
    next_cursor: str | None


class EmployeeList(BaseModel):
    data: list[Employee]
    next_cursor: str | None


# -- integration error log and company ----------------------------------------------------------
class IntegrationError(_Body):
    code: str = Field(
        min_length=1, description="Stable error code, e.g. PROJECT_MISSING_START_DATE."
    )
    severity: str = Field(min_length=1, description="e.g. error, warning, info.")
    message: str = Field(description="The text Svenn users see.")
    entity: str | None = Field(None, description="projects, customers or employees.")
    record_id: int | str | None = None
    record_label: str | None = None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


class IntegrationErrors(_Body):
    errors: list[IntegrationError]


class CompanyInfo(BaseModel):
    id: int
    name: str
    organization_number: str | None


# -- errors ---------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="snake_case, e.g. validation_failed, duplicate_number.")
    message: str
    fields: dict[str, str] | None = Field(None, description="Field → problem.")


class ErrorBody(BaseModel):
    error: ErrorDetail


RESOURCE_MODELS = {
    "projects": (Project, ProjectCreate, ProjectPatch, ProjectList),
    "customers": (Customer, CustomerCreate, CustomerPatch, CustomerList),
    "employees": (Employee, EmployeeCreate, EmployeePatch, EmployeeList),
}
