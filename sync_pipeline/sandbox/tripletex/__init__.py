"""A local Tripletex API v2 for the parts the sync uses, faithful to the real one.

``create_app`` builds the ASGI app served by ``python -m sync_pipeline.sandbox tripletex``.
Behaviour follows ``shared/reference/tripletex/API-NOTES.md``; where the notes are silent
the code says INFERRED. Deliberate limits: arrays of objects the sandbox does not model
(order lines, hourly rates, employments, …) are accepted on write but not kept, and
seeded closed projects count as closed long ago for ``includeRecentlyClosed``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_pipeline.sandbox.core import RateLimitSpec, install
from sync_pipeline.sandbox.tripletex.errors import REQUEST_ID, ApiError, new_request_id
from sync_pipeline.sandbox.tripletex.hub import TripletexHub
from sync_pipeline.sandbox.tripletex.routes import routes

__all__ = ["TripletexHub", "create_app"]


class RequestIdMiddleware:
    """``x-tlx-request-id`` on every API response; error bodies repeat it as ``requestId``."""

    def __init__(self, app: Any, prefix: str = "/v2"):
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        REQUEST_ID.set(request_id)
        header = (b"x-tlx-request-id", request_id.encode())

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    *,
    startup_key: str,
    seed: str = "demo",
    seed_options: dict | None = None,
    state_file=None,
    rate_limit: RateLimitSpec | None = None,
    max_result_set: int | None = None,
    **extra: Any,
) -> FastAPI:
    hub = TripletexHub(
        startup_key=startup_key,
        startup_seed=seed,
        seed_options=seed_options,
        state_file=state_file,
        rate_limit=rate_limit,
        max_result_set=max_result_set,
    )
    app = FastAPI(title="Tripletex sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.routes.extend(routes())
    install(app, hub)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith(hub.api_prefix):
            return JSONResponse({"detail": exc.detail}, exc.status_code)
        if exc.status_code == 404:
            return ApiError(404, 6000, "Object not found").response()
        return ApiError(exc.status_code, 4000, str(exc.detail)).response()

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> Response:
        return ApiError(500, 1000, None).response()

    app.add_middleware(RequestIdMiddleware, prefix=hub.api_prefix)
    return app
