"""Assemble the Svenn sandbox app: API routes, shared sandbox machinery, error shape, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync_pipeline.sandbox import core
from sync_pipeline.sandbox.core import RateLimitSpec
from sync_pipeline.sandbox.svenn.errors import ApiError, error_response
from sync_pipeline.sandbox.svenn.hub import API_PREFIX, SvennHub
from sync_pipeline.sandbox.svenn.models import (
    RESOURCE_MODELS,
    BulkRequest,
    IntegrationErrors,
    WebhookCreate,
)
from sync_pipeline.sandbox.svenn.routes import add_routes

TITLE = "Svenn API (sandbox)"
VERSION = "1"
DESCRIPTION = (
    "The Svenn API v1 as this project defines it (svenn-api.md), served by the local "
    "sandbox. Every response carries RateLimit-Limit/Remaining/Reset; errors are "
    '`{"error": {"code", "message", "fields"?}}`.'
)


def create_app(
    *,
    startup_key: str,
    seed: str = "demo",
    seed_options: dict | None = None,
    state_file: str | Path | None = None,
    rate_limit: RateLimitSpec | None = None,
    **extra: Any,
) -> FastAPI:
    """The Svenn sandbox as an ASGI app; its start-up company is reached with ``startup_key``."""
    hub = SvennHub(
        startup_key=startup_key,
        startup_seed=seed,
        seed_options=seed_options,
        state_file=state_file,
        rate_limit=rate_limit,
    )
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    add_routes(app.router, hub)
    core.install(app, hub)
    _install_error_handlers(app, app.router)
    app.openapi = lambda: _openapi(app)
    return app


def _install_error_handlers(app: FastAPI, router: APIRouter) -> None:
    """Every error leaves in the API's own shape, never FastAPI's or Starlette's."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, exc: RequestValidationError) -> Response:
        fields = {}
        for err in exc.errors():
            loc = [
                str(part) for part in err.get("loc", ()) if part not in ("query", "path", "header")
            ]
            fields[".".join(loc) or "request"] = err.get("msg", "invalid")
        return error_response(400, "invalid_parameter", "a parameter is not valid", fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else None
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; list the path's all.
            headers = {**(headers or {}), "Allow": ", ".join(_methods_of(router, request.url.path))}
        return error_response(exc.status_code, message=message, headers=headers)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> Response:
        return error_response(500, "internal_error", f"unexpected {type(exc).__name__}")


def _drop_null(schema: dict[str, Any]) -> None:
    """A query or header parameter is absent or a string, never JSON null: say so."""
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest


def _methods_of(router: APIRouter, path: str) -> list[str]:
    methods: set[str] = set()
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


_RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Requests allowed in the current window.",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": "Seconds until the window frees a request.",
}
_RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying."}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request bodies, rate-limit headers and only our errors."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    request_models = [IntegrationErrors, BulkRequest, WebhookCreate]
    for _, create_model, patch_model, _ in RESOURCE_MODELS.values():
        request_models += [create_model, patch_model]
    for model in request_models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"]["headers"] = {
        name: {"description": text, "required": True, "schema": {"type": "integer", "minimum": 0}}
        for name, text in {**_RATE_LIMIT_HEADERS, **_RETRY_AFTER}.items()
    }
    doc["components"]["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The company's API key."}
    }
    for item in doc["paths"].values():
        for operation in item.values():
            operation["security"] = [{"bearerAuth": []}]
            for parameter in operation.get("parameters", []):
                _drop_null(parameter["schema"])
            responses = operation["responses"]
            validation = responses.get("422", {}).get("content", {}).get("application/json", {})
            if "HTTPValidationError" in str(validation.get("schema", "")):
                del responses["422"]  # FastAPI's own; ours is documented where it can happen
            for status, response in responses.items():
                names = [*_RATE_LIMIT_HEADERS, *(_RETRY_AFTER if status == "429" else ())]
                response.setdefault("headers", {}).update(
                    {name: {"$ref": f"#/components/headers/{name}"} for name in names}
                )
    app.openapi_schema = doc
    return doc
