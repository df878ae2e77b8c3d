"""The ``/v2`` endpoints. Handlers are plain Starlette endpoints (no FastAPI validation layer:
the sandbox validates like Tripletex, and skipping it keeps thousands of requests/s cheap)."""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from sync_pipeline.sandbox.tripletex import errors as E
from sync_pipeline.sandbox.tripletex import events
from sync_pipeline.sandbox.tripletex import operations as ops
from sync_pipeline.sandbox.tripletex import queries as Q
from sync_pipeline.sandbox.tripletex.errors import ApiError, json_response, vmsg
from sync_pipeline.sandbox.tripletex.fields import parse_fields, parse_sorting
from sync_pipeline.sandbox.tripletex.hub import TripletexHub
from sync_pipeline.sandbox.tripletex.models import (
    COMPANY,
    LOGGED_IN_USER,
    MODELS,
    PROJECT_SETTINGS,
    SESSION_TOKEN,
)
from sync_pipeline.sandbox.tripletex.render import Renderer
from sync_pipeline.sandbox.tripletex.store import Company, oslo_today

_PAGING = ("from", "count", "fields", "sorting")


class TemplateRoute(Route):
    """A Starlette route that, like FastAPI's, leaves itself in ``scope["route"]`` so the
    shared middleware can count requests per path template."""

    def matches(self, scope):
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


# -- request helpers -------------------------------------------------------------------------
class Ctx:
    """The hub, the caller's company and a renderer for this request."""

    __slots__ = ("company", "hub", "params", "renderer")

    def __init__(self, request: Request):
        hub: TripletexHub = request.app.state.hub
        auth = hub.authenticate(request.scope)
        if auth is None or _expired(auth[1]["expirationDate"]):
            raise E.unauthorized()
        company = hub.companies.get(auth[0])
        if company is None:
            raise E.unauthorized()
        self.hub, self.company = hub, company
        self.renderer = Renderer(company, _host(request))
        self.params = request.query_params

    def fields(self, model_name: str):
        return parse_fields(self.params.get("fields"), MODELS[model_name])

    def value(self, table: str, rec: dict[str, Any], status: int = 200) -> Response:
        rendered = self.renderer.render(MODELS[table], rec, self.fields(table))
        return json_response({"value": rendered}, status)

    def values(self, table: str, recs: list[dict[str, Any]], status: int = 200) -> Response:
        selection = self.fields(table)
        model = MODELS[table]
        return json_response(
            {
                "fullResultSize": len(recs),
                "from": 0,
                "count": len(recs),
                "versionDigest": Q.NO_DIGEST,
                "values": [self.renderer.render(model, r, selection) for r in recs],
            },
            status,
        )

    def wrote(self) -> None:
        self.hub.mark_dirty()


def _expired(expiration: str) -> bool:
    """A session stops working at the start of its expiration date, Oslo time (API-NOTES 2.2)."""
    return date.fromisoformat(expiration) <= oslo_today()


def _expiration_date(value: str) -> str | None:
    """The date of an ``expirationDate``: the schema types it as a plain string, and clients
    send both ``2026-12-01`` and ``2026-12-01T23:59:59.000Z``; only the date part counts."""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        return None


def _host(request: Request) -> str:
    for name, value in request.scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    server = request.scope.get("server") or ("127.0.0.1", 80)
    return f"{server[0]}:{server[1]}"


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise ApiError(422, 22000, f"Invalid JSON: {exc}") from None


def _path_id(request: Request) -> int:
    text = request.path_params["id"]
    if not text.isdigit() or int(text) <= 0:
        raise E.not_found()
    return int(text)


# -- generic record endpoints -------------------------------------------------------------------
def _list(table: str):
    model = MODELS[table]

    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        params = ctx.params
        selection = parse_fields(params.get("fields"), model)
        sorting_text = params.get("sorting") or ""
        sorting = parse_sorting(sorting_text, model)
        start = Q.integer("from", params.get("from"), 0)
        count = Q.integer("count", params.get("count"), 1000)
        filters = tuple(sorted((k, v) for k, v in params.items() if k not in _PAGING))
        records = _select(ctx, table, filters, sorting, sorting_text)
        total = len(records)
        limit = ctx.hub.max_result_set
        if limit is not None and total > limit:
            raise Q.too_large(limit)
        page = records[start : start + count]
        version_digest = Q.NO_DIGEST
        sent = request.headers.get("if-none-match")
        if sent:
            version_digest = Q.digest(params.get("fields") or "", total, page)
            if sent.strip().strip('"') == version_digest:
                return Response(status_code=304)
        render = ctx.renderer.render
        return json_response(
            {
                "fullResultSize": Q.full_result_size(total, start, count),
                "from": start,
                "count": len(page),
                "versionDigest": version_digest,
                "values": [render(model, rec, selection) for rec in page],
            }
        )

    return endpoint


def _select(ctx: Ctx, table: str, filters: tuple, sorting: list, sorting_text: str) -> list:
    """Filtered, sorted records, cached per company revision (pages of one listing share it)."""
    cache = ctx.hub.list_cache
    key = (ctx.company.key, table, filters, sorting_text)
    hit = cache.get(key)
    if hit is not None and hit[0] == ctx.company.revision:
        return hit[1]
    records = Q.select(ctx.company, table, dict(filters), sorting)
    if len(cache) > 256:
        cache.clear()
    cache[key] = (ctx.company.revision, records)
    return records


def _get(table: str):
    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        rec = ctx.company.get(table, _path_id(request))
        if rec is None:
            raise E.not_found()
        return ctx.value(table, rec)

    return endpoint


def _post(table: str):
    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        body = await _body(request)
        if table == "projectParticipant":
            (rec,) = ops.create_participants(ctx.company, [body], batch=False)
        else:
            (rec,) = ops.create_many(table, ctx.company, [body], batch=False)
        ctx.wrote()
        return ctx.value(table, rec, 201)

    return endpoint


def _post_list(table: str):
    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        bodies = ops.require_list(await _body(request))
        if table == "projectParticipant":
            recs = ops.create_participants(ctx.company, bodies, batch=True)
        else:
            recs = ops.create_many(table, ctx.company, bodies, batch=True)
        ctx.wrote()
        return ctx.values(table, recs, 201)

    return endpoint


def _put(table: str):
    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        rec_id = _path_id(request)
        (rec,) = ops.update_many(table, ctx.company, [(rec_id, await _body(request))], batch=False)
        ctx.wrote()
        return ctx.value(table, rec)

    return endpoint


def _put_list(table: str):
    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        bodies = ops.require_list(await _body(request))
        items = [(b.get("id") if isinstance(b, dict) else None, b) for b in bodies]
        recs = ops.update_many(table, ctx.company, items, batch=True)
        ctx.wrote()
        return ctx.values(table, recs)

    return endpoint


def _delete(table: str):
    remove = {"project": ops.delete_project, "customer": ops.delete_customer}[table]

    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request)
        remove(ctx.company, _path_id(request))
        ctx.wrote()
        return Response(status_code=204)

    return endpoint


async def put_participant(request: Request) -> Response:
    ctx = Ctx(request)
    rec = ops.update_participant(ctx.company, _path_id(request), await _body(request))
    ctx.wrote()
    return ctx.value("projectParticipant", rec)


async def delete_participants(request: Request) -> Response:
    ctx = Ctx(request)
    ids = Q.id_list("ids", request.query_params.get("ids") or "")
    ops.delete_participants(ctx.company, ids)
    ctx.wrote()
    return Response(status_code=204)


# -- project settings ----------------------------------------------------------------------------
async def get_settings(request: Request) -> Response:
    ctx = Ctx(request)
    return _settings_value(ctx)


async def put_settings(request: Request) -> Response:
    ctx = Ctx(request)
    ops.update_settings(ctx.company, await _body(request))
    ctx.wrote()
    return _settings_value(ctx)


def _settings_value(ctx: Ctx) -> Response:
    selection = parse_fields(ctx.params.get("fields"), PROJECT_SETTINGS)
    value = ctx.renderer.render(PROJECT_SETTINGS, ctx.company.settings, selection)
    return json_response({"value": value})


# -- tokens --------------------------------------------------------------------------------------
async def create_session(request: Request) -> Response:
    """``PUT`` (query parameters, 200) or ``POST`` (JSON body or query, 201) ``:create``."""
    hub: TripletexHub = request.app.state.hub
    args: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        body = await _body(request)
        if isinstance(body, dict):
            args.update({k: v for k, v in body.items() if v is not None})
    msgs = [
        vmsg(name, E.NOT_NULL)
        for name in ("consumerToken", "employeeToken", "expirationDate")
        if not args.get(name)
    ]
    expiration = args.get("expirationDate")
    if expiration:
        expiration = _expiration_date(str(expiration))
        if expiration is None:
            msgs.append(vmsg("expirationDate", E.WRONG_TYPE))
    if msgs:
        raise E.validation_error(msgs)
    company = hub.companies.get(str(args["employeeToken"]))
    if company is None:
        # INFERRED: an unknown employee token is refused like a failed login.
        raise E.unauthorized()
    # A date that is today or past still gives a token; calls with it get 401 (NANGO6298).
    session = company.new_session(
        secrets.token_urlsafe(24), str(expiration), str(args["consumerToken"])
    )
    hub.add_session(company, session)
    record = {
        "id": session["id"],
        "version": 0,
        "consumerToken": 1,
        "employeeToken": 1,
        "expirationDate": session["expirationDate"],
        "token": session["token"],
    }
    selection = parse_fields(request.query_params.get("fields"), SESSION_TOKEN)
    value = Renderer(company, _host(request)).render(SESSION_TOKEN, record, selection)
    return json_response({"value": value}, 201 if request.method == "POST" else 200)


async def who_am_i(request: Request) -> Response:
    ctx = Ctx(request)
    company = ctx.company
    record = {
        "employeeId": company.owner_id,
        "actualEmployeeId": company.owner_id,
        "employee": company.owner_id,
        "companyId": company.company_id,
        "company": company.company_id,
        "language": "no",
        "loggedInWithConnect": False,
        "employeeIsProxy": False,
    }
    selection = parse_fields(ctx.params.get("fields"), LOGGED_IN_USER)
    value = ctx.renderer.render(LOGGED_IN_USER, record, selection)
    sub = selection.get("company")
    if sub:  # the company is not a table; expand it here for ``company(*)``
        value["company"] = ctx.renderer.render(COMPANY, company_record(company), sub)
    return json_response({"value": value})


def company_record(company: Company) -> dict[str, Any]:
    return {
        "id": company.company_id,
        "version": 0,
        "name": company.name,
        "displayName": company.name,
        "organizationNumber": company.organization_number,
        "type": "AS",
    }


# -- the route table -----------------------------------------------------------------------------
def routes() -> list[Route]:
    p = "/v2"
    table = [
        ("/token/session/:create", create_session, ["PUT", "POST"]),
        ("/token/session/>whoAmI", who_am_i, ["GET"]),
        ("/project/settings", get_settings, ["GET"]),
        ("/project/settings", put_settings, ["PUT"]),
        ("/project/list", _post_list("project"), ["POST"]),
        ("/project/list", _put_list("project"), ["PUT"]),
        ("/project/participant", _post("projectParticipant"), ["POST"]),
        ("/project/participant/list", _post_list("projectParticipant"), ["POST"]),
        ("/project/participant/list", delete_participants, ["DELETE"]),
        ("/project/participant/{id}", _get("projectParticipant"), ["GET"]),
        ("/project/participant/{id}", put_participant, ["PUT"]),
        ("/project", _list("project"), ["GET"]),
        ("/project", _post("project"), ["POST"]),
        ("/project/{id}", _get("project"), ["GET"]),
        ("/project/{id}", _put("project"), ["PUT"]),
        ("/project/{id}", _delete("project"), ["DELETE"]),
        ("/customer/list", _post_list("customer"), ["POST"]),
        ("/customer/list", _put_list("customer"), ["PUT"]),
        ("/customer", _list("customer"), ["GET"]),
        ("/customer", _post("customer"), ["POST"]),
        ("/customer/{id}", _get("customer"), ["GET"]),
        ("/customer/{id}", _put("customer"), ["PUT"]),
        ("/customer/{id}", _delete("customer"), ["DELETE"]),
        ("/employee/list", _post_list("employee"), ["POST"]),
        ("/employee", _list("employee"), ["GET"]),
        ("/employee", _post("employee"), ["POST"]),
        ("/employee/{id}", _get("employee"), ["GET"]),
        ("/employee/{id}", _put("employee"), ["PUT"]),
        ("/department", _list("department"), ["GET"]),
        ("/department/{id}", _get("department"), ["GET"]),
        *events.ROUTES,
    ]
    return [TemplateRoute(p + path, fn, methods=methods) for path, fn, methods in table]
