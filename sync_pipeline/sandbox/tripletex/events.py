"""Event subscriptions and their deliveries (API-NOTES §8).

``/event/subscription`` creates, lists, reads, changes and deletes a company's
subscriptions (one event per subscription, ``subject.verb``); after every request that
changed a project, customer or employee, each active subscription to that event gets a
POST of ``{"value", "event", "subscriptionId", "id"}`` (``value`` filtered by the
subscription's ``fields``; ``null`` for a delete) with an ``idempotency-key`` header kept
across retries and, when ``hmacSharedSecret`` is set, ``x-request-signature`` =
base64(HMAC-SHA512(secret, idempotency-key + "&" + body)) (§8.5).

A subscription counts consecutive failed attempts; at ``disable_after`` it becomes
``DISABLED_TOO_MANY_ERRORS`` and its deliveries stop until a PUT sets it ``ACTIVE`` again;
a success resets the count (§8.6). INFERRED: the count is per subscription and the
threshold is a sandbox setting (``POST /_sandbox/webhooks {"disable_after": N}``); the real
service disables after about 30 hours of failures. The sandbox accepts ``http`` target URLs
on loopback addresses besides ``https`` (it delivers to nothing else).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from sync_pipeline.sandbox.tripletex import errors as E
from sync_pipeline.sandbox.tripletex.errors import json_response, vmsg
from sync_pipeline.sandbox.tripletex.fields import parse_fields
from sync_pipeline.sandbox.tripletex.models import MODELS
from sync_pipeline.sandbox.tripletex.render import Renderer
from sync_pipeline.sandbox.tripletex.store import EVENT_TABLES, Company
from sync_pipeline.sandbox.webhooks import Delivery, is_loopback_url

STATUSES = (
    "ACTIVE",
    "DISABLED",
    "DISABLED_TOO_MANY_ERRORS",
    "DISABLED_RATE_LIMIT_EXCEEDED",
    "DISABLED_MISUSE",
)
_SUBJECTS = (
    *EVENT_TABLES,
    "contact",
    "supplier",
    "order",
    "product",
    "account",
    "voucher",
    "archiverelation",
)
EVENTS = {
    **{f"{s}.{v}": s for s in _SUBJECTS for v in ("create", "update", "delete")},
    "invoice.charged": "invoice",
    "notification.sent": "notification",
    "voucherstatus.ready": "voucherstatus",
}
_WRITABLE = ("event", "targetUrl", "fields", "authHeaderName", "authHeaderValue")
_EMPTY = "Feltet kan ikke være tomt."
DEFAULT_DISABLE_AFTER = 20


def render(sub: dict[str, Any], host: str) -> dict[str, Any]:
    """Write-only fields (``authHeaderValue``, ``hmacSharedSecret``) never leave."""
    return {
        "id": sub["id"],
        "version": sub["version"],
        "url": f"{host}/v2/event/subscription/{sub['id']}",
        "event": sub["event"],
        "targetUrl": sub["targetUrl"],
        "fields": sub["fields"],
        "status": sub["status"],
        "authHeaderName": sub["authHeaderName"] or "",  # unset strings render as ""
    }


def _check(body: Any, current: dict[str, Any] | None) -> dict[str, Any]:
    """The subscription's new values, or 422 with Tripletex's messages."""
    if not isinstance(body, dict):
        raise E.validation_error([vmsg(None, E.WRONG_TYPE)])
    msgs: list[dict[str, Any]] = []
    allowed = {*_WRITABLE, "hmacSharedSecret", "id", "version", "url", "status", "changes"}
    msgs += [vmsg(name, E.UNKNOWN_PROPERTY) for name in body if name not in allowed]
    values = {k: body[k] for k in (*_WRITABLE, "hmacSharedSecret", "status") if k in body}
    merged = {**(current or {}), **values}
    for name in ("event", "targetUrl"):
        value = merged.get(name)
        if value is None:
            msgs += [vmsg(name, E.NOT_NULL), vmsg(name, _EMPTY)]
        elif not isinstance(value, str):
            msgs.append(vmsg(name, E.WRONG_TYPE))
        elif not value.strip():
            msgs.append(vmsg(name, _EMPTY))
    event, target = merged.get("event"), merged.get("targetUrl")
    if isinstance(event, str) and event.strip() and event not in EVENTS:
        msgs.append(vmsg("event", f"Ukjent hendelse: {event}."))
    if isinstance(target, str) and target.strip():
        parts = urlsplit(target)
        secure = parts.scheme == "https" and parts.hostname
        if not (secure or (parts.scheme == "http" and is_loopback_url(target))):
            msgs.append(vmsg("targetUrl", "URL-en må være absolutt og bruke HTTPS."))
    secret = values.get("hmacSharedSecret")
    if secret is not None and (not isinstance(secret, str) or not 10 <= len(secret) <= 100):
        msgs.append(vmsg("hmacSharedSecret", E.length_message(10, 100)))
    status = values.get("status")
    if status is not None and status not in ("ACTIVE", "DISABLED"):
        msgs.append(vmsg("status", E.BAD_FORMAT))
    fields = merged.get("fields")
    if fields is not None and not isinstance(fields, str):
        msgs.append(vmsg("fields", E.WRONG_TYPE))
    if msgs:
        raise E.validation_error(msgs)
    if fields and event in EVENTS and EVENTS[event] in MODELS:
        parse_fields(fields, MODELS[EVENTS[event]])  # 400/11000 on an unknown field
    return values


# -- endpoints ----------------------------------------------------------------------------------
def _ctx(request: Request):
    from sync_pipeline.sandbox.tripletex.routes import Ctx, _host

    return Ctx(request), _host(request)


def _sub(company: Company, request: Request) -> dict[str, Any]:
    text = request.path_params["id"]
    sub = company.subscriptions.get(int(text)) if text.isdigit() else None
    if sub is None:
        raise E.not_found()
    return sub


async def list_subscriptions(request: Request) -> Response:
    ctx, host = _ctx(request)
    subs = [render(s, host) for s in ctx.company.subscriptions.values()]
    return json_response(
        {"fullResultSize": len(subs), "from": 0, "count": len(subs), "values": subs}
    )


async def create_subscription(request: Request) -> Response:
    from sync_pipeline.sandbox.tripletex.routes import _body

    ctx, host = _ctx(request)
    values = _check(await _body(request), None)
    company = ctx.company
    sub = {
        "id": company.next_subscription_id,
        "version": 0,
        "event": values["event"],
        "targetUrl": values["targetUrl"],
        "fields": values.get("fields") or "",
        "status": "ACTIVE",
        "authHeaderName": values.get("authHeaderName"),
        "authHeaderValue": values.get("authHeaderValue"),
        "hmacSharedSecret": values.get("hmacSharedSecret"),
        "failures": 0,
    }
    company.next_subscription_id += 1
    company.subscriptions[sub["id"]] = sub
    ctx.wrote()
    return json_response({"value": render(sub, host)}, 201)


async def get_subscription(request: Request) -> Response:
    ctx, host = _ctx(request)
    return json_response({"value": render(_sub(ctx.company, request), host)})


async def put_subscription(request: Request) -> Response:
    """Change a subscription; ``status: ACTIVE`` re-enables a disabled one (API-NOTES 8.6)."""
    from sync_pipeline.sandbox.tripletex.routes import _body

    ctx, host = _ctx(request)
    sub = _sub(ctx.company, request)
    body = await _body(request)
    if isinstance(body, dict) and body.get("version") not in (None, sub["version"]):
        raise E.stale_version()
    values = _check(body, sub)
    if values.get("status") == "ACTIVE":
        sub["failures"] = 0
    changed = {k: v for k, v in values.items() if sub.get(k) != v}
    if changed:
        sub.update(changed)
        sub["version"] += 1
        ctx.wrote()
    return json_response({"value": render(sub, host)})


async def delete_subscription(request: Request) -> Response:
    ctx, _ = _ctx(request)
    sub = _sub(ctx.company, request)
    del ctx.company.subscriptions[sub["id"]]
    ctx.wrote()
    return Response(status_code=204)


async def list_events(request: Request) -> Response:
    """``GET /event``: event name → description (no authentication needed, CL 2.56.4)."""
    return json_response(
        {"value": {name: {"description": f"{name} fired"} for name in sorted(EVENTS)}}
    )


ROUTES = [
    ("/event", list_events, ["GET"]),
    ("/event/subscription", list_subscriptions, ["GET"]),
    ("/event/subscription", create_subscription, ["POST"]),
    ("/event/subscription/{id}", get_subscription, ["GET"]),
    ("/event/subscription/{id}", put_subscription, ["PUT"]),
    ("/event/subscription/{id}", delete_subscription, ["DELETE"]),
]


# -- deliveries -----------------------------------------------------------------------------------
def signature(secret: str, idempotency_key: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), idempotency_key.encode() + b"&" + body, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def deliveries(hub: Any, company: Company, host: str) -> list[Delivery]:
    """One delivery per queued event and active subscription to it."""
    out: list[Delivery] = []
    renderer = Renderer(company, host)
    for table, verb, rec_id in company.take_events():
        event = f"{table}.{verb}"
        rec = company.get(table, rec_id) if verb != "delete" else None
        if verb != "delete" and rec is None:
            continue  # created and removed by one request: nothing left to tell
        for sub in list(company.subscriptions.values()):
            if sub["event"] != event or sub["status"] != "ACTIVE":
                continue
            value = None
            if rec is not None:
                model = MODELS[table]
                value = renderer.render(model, rec, parse_fields(sub["fields"] or None, model))
            body = json.dumps(
                {"value": value, "event": event, "subscriptionId": sub["id"], "id": rec_id},
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            key = str(uuid.uuid4())
            headers = {"idempotency-key": key}
            if sub["hmacSharedSecret"]:
                headers["x-request-signature"] = signature(sub["hmacSharedSecret"], key, body)
            if sub["authHeaderName"] and sub["authHeaderValue"]:
                headers[sub["authHeaderName"]] = sub["authHeaderValue"]
            out.append(
                Delivery(
                    key,
                    sub["targetUrl"],
                    body,
                    headers,
                    event,
                    report=lambda ok, s=sub: _report(hub, s, ok),
                    wanted=lambda c=company, s=sub: (
                        c.subscriptions.get(s["id"]) is s and s["status"] == "ACTIVE"
                    ),
                )
            )
    return out


def _report(hub: Any, sub: dict[str, Any], ok: bool) -> None:
    """Count consecutive failures; too many disable the subscription (runs on the sender
    thread: single assignments of one subscription's fields, which the GIL keeps whole)."""
    if ok:
        sub["failures"] = 0
        return
    sub["failures"] = sub.get("failures", 0) + 1
    if sub["failures"] >= hub.disable_after and sub["status"] == "ACTIVE":
        sub["status"] = "DISABLED_TOO_MANY_ERRORS"
        sub["version"] += 1
        hub.mark_dirty()
