"""The webhook receiver (issue 15): verify, de-duplicate, spool, answer 2xx — nothing else.

``POST /webhooks/tripletex/<tenant>`` and ``POST /webhooks/svenn/<tenant>``. The order of
checks gives each refusal one clear status and stores nothing: an unknown tenant, or one
without a secret for that system, is 404; a missing or wrong signature 401 (Tripletex:
``x-request-signature`` = base64(HMAC-SHA512(secret, idempotency-key + "&" + body)),
API-NOTES 8.5; Svenn: ``Svenn-Signature: sha256=<hex HMAC-SHA256(secret, body)>``); a body
that is not a delivery of a project, customer or employee event 400. A verified delivery is
stored in the spool (:mod:`.spool`, why there and not in DuckDB is explained there) and
answered 200 — ``stored`` or ``duplicate`` — so a retried delivery is acknowledged but kept
once. The receiver never calls either API: the sensor starts a run that reads the records.

Each handler reads the body on the event loop and does the rest in the thread pool, so the
spool's fsync never blocks other deliveries; each one is its own short SQLite write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sync_pipeline.tenants import TenantConfig, TenantConfigError, load_tenant, tenants_file_path
from sync_pipeline.webhooks import spool

ENTITIES = ("project", "customer", "employee")
#: Each system's verbs → the action stored.
_ACTIONS = {
    "tripletex": {"create": "create", "update": "update", "delete": "delete"},
    "svenn": {"created": "create", "updated": "update", "deleted": "delete"},
}


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class _Tenants:
    """The tenants file as deliveries need it: one tenant at a time, an edit applying to the
    next delivery (``load_tenant`` re-parses the file when it changed), a broken entry of
    another tenant refusing only that tenant's deliveries."""

    def __init__(self, path: Path | None):
        self.path = path

    def get(self, key: str) -> TenantConfig | None:
        try:
            return load_tenant(key, self.path or tenants_file_path())
        except TenantConfigError:
            return None


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name)
    if not value:
        raise Refused(401, f"unsigned delivery: no {name} header")
    return value


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body is not a JSON object")
    return body


def _event_name(source: str, name: Any) -> tuple[str, str]:
    entity, _, verb = name.partition(".") if isinstance(name, str) else ("", "", "")
    action = _ACTIONS[source].get(verb)
    if entity not in ENTITIES or action is None:
        raise Refused(400, f"not a project, customer or employee event: {name!r}")
    return entity, action


def _positive_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Refused(400, f"{what} must be a positive integer")
    return value


def tripletex_event(tenant: str, secret: str, request: Request, raw: bytes) -> spool.Event:
    key = _header(request, "idempotency-key")
    sent = _header(request, "x-request-signature")
    mac = hmac.new(secret.encode(), key.encode() + b"&" + raw, hashlib.sha512).digest()
    if not hmac.compare_digest(sent.strip(), base64.b64encode(mac).decode()):
        raise Refused(401, "wrong signature")
    body = _json(raw)
    entity, action = _event_name("tripletex", body.get("event"))
    record_id = _positive_int(body.get("id"), "id")
    value = body.get("value")
    if action != "delete" and not isinstance(value, dict):
        raise Refused(400, "value must be an object for a create or update")
    version = value.get("version") if isinstance(value, dict) else None
    return spool.Event(
        "tripletex",
        tenant,
        key,
        body["event"],
        entity,
        action,
        record_id,
        version if isinstance(version, int) else None,
        raw.decode("utf-8", "replace"),
    )


def svenn_event(tenant: str, secret: str, request: Request, raw: bytes) -> spool.Event:
    delivery = _header(request, "svenn-delivery")
    sent = _header(request, "svenn-signature")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sent.strip(), expected):
        raise Refused(401, "wrong signature")
    body = _json(raw)
    if body.get("id") != delivery:
        raise Refused(400, "the body's id is not the Svenn-Delivery header")
    entity, action = _event_name("svenn", body.get("event"))
    data = body.get("data")
    if not isinstance(data, dict):
        raise Refused(400, "data must be an object with the record's id and version")
    record_id = _positive_int(data.get("id"), "data.id")
    version = data.get("version")
    return spool.Event(
        "svenn",
        tenant,
        delivery,
        body["event"],
        entity,
        action,
        record_id,
        version if isinstance(version, int) else None,
        raw.decode("utf-8", "replace"),
    )


_PARSERS = {"tripletex": tripletex_event, "svenn": svenn_event}


def create_app(
    *, tenants_file: str | Path | None = None, spool_file: str | Path | None = None
) -> FastAPI:
    """The receiver as an ASGI app (``sync-pipeline webhooks serve`` runs it with uvicorn)."""
    app = FastAPI(title="sync_pipeline webhook receiver", docs_url=None, redoc_url=None)
    tenants = _Tenants(Path(tenants_file) if tenants_file else None)
    spool_at = Path(spool_file) if spool_file else None

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def receive(source: str, tenant: str, request: Request, raw: bytes) -> JSONResponse:
        config = tenants.get(tenant)
        secret = config.webhook_secret(source) if config is not None else None
        try:
            if secret is None:
                raise Refused(404, f"no tenant '{tenant}' receives {source} webhooks here")
            event = _PARSERS[source](tenant, secret, request, raw)
        except Refused as refused:
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        with spool.connect(spool_at) as conn:
            new = spool.store(conn, event)
        return JSONResponse({"status": "stored" if new else "duplicate"})

    @app.post("/webhooks/tripletex/{tenant}")
    async def tripletex(tenant: str, request: Request) -> JSONResponse:
        raw = await request.body()
        return await run_in_threadpool(receive, "tripletex", tenant, request, raw)

    @app.post("/webhooks/svenn/{tenant}")
    async def svenn(tenant: str, request: Request) -> JSONResponse:
        raw = await request.body()
        return await run_in_threadpool(receive, "svenn", tenant, request, raw)

    return app
