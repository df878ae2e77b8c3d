"""Pydantic models of the Svenn API v1, for its OpenAPI document.

Requests are validated by :mod:`.fields` (one table for rules, defaults and
loading) and responses are serialised from the stored records directly, both
for speed; these models only *describe* the same shapes. A test checks them
against svenn-api.md and schemathesis checks the server against them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

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


# -- webhooks -------------------------------------------------------------------------------------
WEBHOOK_EVENTS = tuple(
    f"{entity}.{verb}"
    for entity in ("project", "customer", "employee")
    for verb in ("created", "updated", "deleted")
)
WebhookEvent = Literal[WEBHOOK_EVENTS]  # type: ignore[valid-type]


class WebhookCreate(_Body):
    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
        description="An https URL, or http to a loopback address.",
    )
    events: list[WebhookEvent] = Field(min_length=1, json_schema_extra={"uniqueItems": True})
    secret: str = Field(
        min_length=16, max_length=128, description="Signs every delivery (HMAC-SHA256)."
    )


class Webhook(BaseModel):
    id: int
    url: str
    events: list[WebhookEvent]
    created_at: dt.datetime


class WebhookList(BaseModel):
    data: list[Webhook]


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


# -- bulk writes ----------------------------------------------------------------------------------
# ``data`` is documented as any object on purpose: its fields are checked per operation (a bad
# one is that operation's 422 inside a 200), so the resource's Create/Patch schema does not
# decide whether the request as a whole is accepted; only the envelope does (else 400).
_DATA_CREATE = (
    "The new record's fields, as the resource's create body (e.g. CustomerCreate); "
    "checked for this operation alone."
)
_DATA_PATCH = (
    "The fields to change, as the resource's patch body (e.g. CustomerPatch); "
    "checked for this operation alone."
)
_IF_MATCH_OP = "The version the change is based on (as If-Match); another version → 412."


class BulkCreate(_Body):
    op: Literal["create"]
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="As the Idempotency-Key header of a single create, sharing its memory: "
        "a key already used (singly or in a bulk) for the same data within 24 h replays the "
        "first record; for other data the operation is 422 idempotency_key_reused.",
    )
    data: dict[str, Any] = Field(description=_DATA_CREATE)


class BulkUpdate(_Body):
    op: Literal["update"]
    id: int
    if_match: int | None = Field(None, ge=1, description=_IF_MATCH_OP)
    data: dict[str, Any] = Field(description=_DATA_PATCH)


class BulkDelete(_Body):
    op: Literal["delete"]
    id: int
    if_match: int | None = Field(None, ge=1, description=_IF_MATCH_OP)


BulkOperation = Annotated[BulkCreate | BulkUpdate | BulkDelete, Field(discriminator="op")]


class BulkRequest(_Body):
    operations: list[BulkOperation] = Field(
        min_length=1,
        max_length=100,
        description="Applied in order and independently: one failing does not stop or undo "
        "the others.",
    )


BulkStatus = Literal[201, 200, 204, 404, 409, 412, 422]


def _bulk_results(name: str, record: type[BaseModel]) -> type[BaseModel]:
    result = create_model(
        f"{name}BulkResult",
        status=(BulkStatus, Field(description="What this operation alone would have answered.")),
        record=(
            record | None,
            Field(description="The created or updated record, the tombstone of a deleted one."),
        ),
        error=(ErrorDetail | None, Field(description="Why this operation failed.")),
    )
    return create_model(
        f"{name}BulkResults",
        results=(list[result], Field(description="One per operation, in the same order.")),
    )


#: resource → the bulk response body, its records typed as the resource's.
BULK_RESULT_MODELS = {
    resource: _bulk_results(models[0].__name__, models[0])
    for resource, models in RESOURCE_MODELS.items()
}
