"""The HTTP surface of the Svenn API v1 (svenn-api.md), on top of :mod:`.store`.

Handlers are ``async def`` doing synchronous in-memory work, so requests never
interleave inside a write. Bodies are parsed and checked by :mod:`.fields`
and answered with pre-serialised JSON; the pydantic models only document them.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from sync_pipeline.sandbox import core
from sync_pipeline.sandbox.svenn import bulk
from sync_pipeline.sandbox.svenn.errors import ApiError
from sync_pipeline.sandbox.svenn.fields import ERROR_LOG_FIELDS, RESOURCES, error_log_problems
from sync_pipeline.sandbox.svenn.hub import API_PREFIX, SvennHub
from sync_pipeline.sandbox.svenn.models import (
    BULK_RESULT_MODELS,
    RESOURCE_MODELS,
    WEBHOOK_EVENTS,
    BulkRequest,
    CompanyInfo,
    ErrorBody,
    IntegrationErrors,
    Webhook,
    WebhookCreate,
    WebhookList,
)
from sync_pipeline.sandbox.svenn.store import Company, decode_cursor, dump_json, encode_cursor
from sync_pipeline.sandbox.svenn.timestamps import format_us, now_us, parse_rfc3339
from sync_pipeline.sandbox.webhooks import is_loopback_url

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON body or parameter.",
    401: "Missing or unknown API key.",
    404: "No such record (or it is deleted).",
    409: "`duplicate_number`: the number is used by another live record.",
    412: "`version_mismatch`: If-Match names another version; nothing changed.",
    422: "`validation_failed` with `fields`, or `idempotency_key_reused`.",
    429: "`rate_limited`: retry after `Retry-After` seconds.",
    "5XX": "Server error.",
}
_IF_MATCH = re.compile(r'(?:W/)?"?([0-9]{1,18})"?')
_JSON = "application/json"


def errors(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the given error statuses (plus the ones every call can get)."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in (*statuses, 401, 429, "5XX")
    }


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dump_json(payload), status_code=status, headers=headers, media_type=_JSON)


def idempotency_scope(resource: str) -> str:
    """Where a resource's Idempotency-Keys live: one memory for single and bulk creates."""
    return f"POST {API_PREFIX}/{resource}"


def _json_number(text: str) -> int | float:
    """``7.0`` is the integer 7, as JSON and JSON Schema count it (the contract has no
    fractional fields: an id sent as ``7.0`` names record 7)."""
    value = float(text)
    return int(value) if value.is_integer() else value


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "malformed_json", "a JSON body is required")
    try:
        return json.loads(raw, parse_float=_json_number)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(
            422, "validation_failed", "the body must be a JSON object", {"body": "not an object"}
        )
    return body


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _IF_MATCH.fullmatch(value.strip())
    if not match:
        raise ApiError(
            400,
            "invalid_parameter",
            "If-Match must be a record version",
            {"If-Match": "not a version"},
        )
    return int(match.group(1))


def request_body_doc(model: type) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


async def current_company(request: Request) -> Company:
    """The company of the request's bearer key; 401 without a known one.

    Documented as the ``bearerAuth`` scheme by the app's OpenAPI step rather than through
    FastAPI's ``HTTPBearer``, which would add a dependency level to every request.
    """
    hub: SvennHub = request.app.state.hub
    key = hub.company_key(request.scope)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or unknown API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return hub.companies[key]


CurrentCompany = Annotated[Company, Depends(current_company)]


def add_routes(router: APIRouter, hub: SvennHub) -> None:
    """Register the API on ``router`` (the app's own: included routers cost a lookup level)."""

    for resource in RESOURCES:
        _add_resource_routes(router, resource)

    @router.get(
        f"{API_PREFIX}/integrations/tripletex/errors",
        response_model=IntegrationErrors,
        responses=errors(),
        tags=["integration"],
        summary="The open sync errors Svenn shows under Tripletex → Feillogg",
    )
    async def get_integration_errors(company: CurrentCompany) -> Response:
        return json_response({"errors": company.integration_errors})

    @router.put(
        f"{API_PREFIX}/integrations/tripletex/errors",
        status_code=204,
        response_class=Response,
        responses=errors(400, 422),
        openapi_extra=request_body_doc(IntegrationErrors),
        tags=["integration"],
        summary="Replace the list of open sync errors",
    )
    async def put_integration_errors(request: Request, company: CurrentCompany) -> Response:
        body = await json_body(request)
        problems = error_log_problems(body)
        if problems:
            raise ApiError(422, "validation_failed", "the error list is not valid", problems)
        company.integration_errors = [
            {name: entry.get(name) for name in ERROR_LOG_FIELDS} for entry in body["errors"]
        ]
        hub.mark_dirty()
        return Response(status_code=204)

    _add_webhook_routes(router, hub)

    @router.get(
        f"{API_PREFIX}/company",
        response_model=CompanyInfo,
        responses=errors(),
        tags=["company"],
        summary="The company the API key belongs to",
    )
    async def get_company(company: CurrentCompany) -> Response:
        return json_response(
            {
                "id": company.id,
                "name": company.name,
                "organization_number": company.organization_number,
            }
        )


def _webhook_problems(body: dict[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name in body.keys() - {"url", "events", "secret"}:
        problems[name] = "unknown field"
    url = body.get("url")
    if not isinstance(url, str) or not url:
        problems["url"] = "required: an https URL or a loopback http URL"
    elif len(url) > 2048 or not (
        url.startswith("https://") or (url.startswith("http://") and is_loopback_url(url))
    ):
        problems["url"] = "must be an https URL, or http to a loopback address"
    events = body.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) for e in events)
        or len(set(events)) != len(events)
    ):
        problems["events"] = "required: a non-empty list of distinct event names"
    else:
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            problems["events"] = f"unknown event {unknown[0]!r}"
    secret = body.get("secret")
    if not isinstance(secret, str) or not 16 <= len(secret) <= 128:
        problems["secret"] = "required: 16–128 characters"
    return problems


def _webhook_json(hook: dict[str, Any]) -> dict[str, Any]:
    return {name: hook[name] for name in ("id", "url", "events", "created_at")}


def _add_webhook_routes(router: APIRouter, hub: SvennHub) -> None:
    tags = ["webhooks"]

    @router.post(
        f"{API_PREFIX}/webhooks",
        status_code=201,
        response_model=Webhook,
        responses=errors(400, 422),
        openapi_extra=request_body_doc(WebhookCreate),
        tags=tags,
        summary="Subscribe a URL to record events (signed, at-least-once deliveries)",
    )
    async def create_webhook(request: Request, company: CurrentCompany) -> Response:
        body = await json_object(request)
        problems = _webhook_problems(body)
        if problems:
            raise ApiError(422, "validation_failed", "the subscription is not valid", problems)
        hook = {
            "id": company.next_webhook_id,
            "url": body["url"],
            "events": list(body["events"]),
            "created_at": format_us(now_us()),
            "secret": body["secret"],
        }
        company.next_webhook_id += 1
        company.webhooks.append(hook)
        hub.mark_dirty()
        return json_response(_webhook_json(hook), 201)

    @router.get(
        f"{API_PREFIX}/webhooks",
        response_model=WebhookList,
        responses=errors(),
        tags=tags,
        summary="The key's webhook subscriptions (secrets are never returned)",
    )
    async def list_webhooks(company: CurrentCompany) -> Response:
        return json_response({"data": [_webhook_json(h) for h in company.webhooks]})

    @router.delete(
        f"{API_PREFIX}/webhooks/{{id}}",
        status_code=204,
        response_class=Response,
        responses=errors(400, 404),
        tags=tags,
        summary="Delete a webhook subscription",
    )
    async def delete_webhook(
        company: CurrentCompany, id: int = Path(description="The subscription's id.")
    ) -> Response:
        hook = next((h for h in company.webhooks if h["id"] == id), None)
        if hook is None:
            raise ApiError(404, "not_found", f"no webhook with id {id}")
        company.webhooks.remove(hook)
        hub.mark_dirty()
        return Response(status_code=204)


def _add_resource_routes(router: APIRouter, resource: str) -> None:
    record_model, create_model, patch_model, list_model = RESOURCE_MODELS[resource]
    singular = resource[:-1]
    number_conflicts = (409,) if resource != "projects" else ()
    tags = [resource]

    @router.post(
        f"{API_PREFIX}/{resource}/bulk",
        response_model=BULK_RESULT_MODELS[resource],
        responses={
            **errors(400),
            400: {
                "model": ErrorBody,
                "description": "Malformed JSON, or `malformed_bulk`: not an object with "
                "1–100 `operations`, an unknown `op`, or an operation without its `id`/`data`; "
                "nothing is applied.",
            },
        },
        openapi_extra=request_body_doc(BulkRequest),
        tags=tags,
        operation_id=f"bulk_{resource}",
        summary=f"Create, change and delete up to 100 {resource} in one request",
        description="Operations are applied in order and independently; each gets its own "
        "result (status, record or error). One request for the rate limit.",
    )
    async def bulk_write(request: Request, company: CurrentCompany) -> Response:
        operations = bulk.parse(await json_body(request))
        core.count_writes(request.scope, len(operations))
        results = bulk.apply(
            company, resource, operations, idempotency_scope=idempotency_scope(resource)
        )
        return Response(results, media_type=_JSON)

    # Registered before /{id}: "bulk" would otherwise reach GET/PATCH/DELETE /{id} as an id (400).
    @router.api_route(
        f"{API_PREFIX}/{resource}/bulk",
        methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    async def bulk_other_methods() -> Response:
        raise ApiError(405, message="a bulk request is a POST", headers={"Allow": "POST"})

    @router.get(
        f"{API_PREFIX}/{resource}",
        response_model=list_model,
        responses=errors(400),
        tags=tags,
        operation_id=f"list_{resource}",
        summary=f"List {resource} in (updated_at, id) order",
    )
    async def list_records(
        company: CurrentCompany,
        limit: int = Query(100, ge=1, le=500, description="Page size."),
        cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
        updated_since: str | None = Query(
            None,
            description="Only records with updated_at >= this RFC 3339 timestamp.",
            json_schema_extra={"format": "date-time"},
        ),
        include_deleted: bool = Query(False, description="Include tombstones (deleted_at set)."),
    ) -> Response:
        since_us = None
        if updated_since is not None:
            since_us = parse_rfc3339(updated_since)
            if since_us is None:
                raise ApiError(
                    400,
                    "invalid_parameter",
                    "updated_since must be an RFC 3339 timestamp with offset",
                    {"updated_since": "not an RFC 3339 timestamp"},
                )
        after = decode_cursor(resource, cursor) if cursor is not None else None
        records, last = company.page(
            resource,
            limit=limit,
            since_us=since_us,
            after=after,
            include_deleted=include_deleted,
        )
        next_cursor = encode_cursor(resource, *last) if last is not None else None
        return json_response({"data": records, "next_cursor": next_cursor})

    @router.get(
        f"{API_PREFIX}/{resource}/{{id}}",
        response_model=record_model,
        responses=errors(400, 404),
        tags=tags,
        operation_id=f"get_{singular}",
        summary=f"Read one {singular} (a deleted one is 404)",
    )
    async def get_record(
        company: CurrentCompany,
        id: int = Path(description=f"The {singular}'s id."),
    ) -> Response:
        return json_response(company.get(resource, id))

    @router.post(
        f"{API_PREFIX}/{resource}",
        status_code=201,
        response_model=record_model,
        responses=errors(400, *number_conflicts, 422),
        openapi_extra=request_body_doc(create_model),
        tags=tags,
        operation_id=f"create_{singular}",
        summary=f"Create a {singular}",
    )
    async def create_record(
        request: Request,
        company: CurrentCompany,
        idempotency_key: str | None = Header(
            None,
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="A repeat within 24 h returns the first response and creates nothing; "
            "the same key with another body is 422 idempotency_key_reused.",
        ),
    ) -> Response:
        body = await json_object(request)
        record, replayed = company.create_once(
            idempotency_scope(resource), resource, body, idempotency_key
        )
        if replayed:
            headers = {"Idempotent-Replayed": "true"}
        else:
            headers = {"Location": f"{API_PREFIX}/{resource}/{json.loads(record)['id']}"}
        return Response(record, status_code=201, media_type=_JSON, headers=headers)

    @router.patch(
        f"{API_PREFIX}/{resource}/{{id}}",
        response_model=record_model,
        responses=errors(400, 404, *number_conflicts, 412, 422),
        openapi_extra=request_body_doc(patch_model),
        tags=tags,
        operation_id=f"update_{singular}",
        summary=f"Change the given fields of a {singular}",
    )
    async def update_record(
        request: Request,
        company: CurrentCompany,
        id: int = Path(description=f"The {singular}'s id."),
        if_match: str | None = Header(
            None,
            alias="If-Match",
            pattern=r'^(W/)?"?[0-9]{1,18}"?$',
            description="The version the change is based on; another version → 412.",
        ),
    ) -> Response:
        version = parse_if_match(if_match)
        body = await json_object(request)
        return json_response(company.update(resource, id, body, version))

    @router.delete(
        f"{API_PREFIX}/{resource}/{{id}}",
        status_code=204,
        response_class=Response,
        responses=errors(400, 404),
        tags=tags,
        operation_id=f"delete_{singular}",
        summary=f"Soft-delete a {singular} (deleted_at set, version + 1)",
    )
    async def delete_record(
        company: CurrentCompany,
        id: int = Path(description=f"The {singular}'s id."),
    ) -> Response:
        company.delete(resource, id)
        return Response(status_code=204)
