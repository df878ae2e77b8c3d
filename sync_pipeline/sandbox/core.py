"""Machinery shared by the Svenn and Tripletex sandbox servers.

Both sandboxes host several isolated companies, keyed by a credential (a
Tripletex employee token, a Svenn API key), and offer the same control surface
outside the API prefix so tests and the demo can steer them:

- ``POST /_sandbox/companies`` registers a company (``{"<key_field>": "...", "seed": ...}``),
- ``POST /_sandbox/reset`` forgets everything but the start-up company,
- ``POST`` / ``DELETE /_sandbox/faults`` injects or clears faults (an error status, a
  delay, or a rewritten list answer: ``hide_ids``, ``null_ids``, ``drop_fields``),
- ``GET /_sandbox/stats[?<key_field>=K]`` counts requests per path template and writes,
- ``GET`` / ``POST /_sandbox/webhooks`` shows the webhook delivery log and tunes the retries
  (``backoff_s``, ``horizon_s``, ``timeout_s``, ``paused``; :mod:`.webhooks`).

An API-specific hub subclasses :class:`SandboxHub`; the ASGI middleware here applies
faults, rate limits and statistics in front of the API routes, so each sandbox
only implements its own resources.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import pickle
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sync_pipeline.sandbox.webhooks import WebhookDispatcher

SEEDS = ("demo", "empty", "world")


class SandboxError(Exception):
    """A bad control request; becomes a 400 with the message."""


@dataclass(frozen=True)
class RateLimitSpec:
    """``N`` requests per ``seconds`` (a rolling window), per company."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str | None) -> RateLimitSpec | None:
        if text is None or text.strip().lower() in ("", "off", "none"):
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", text)
        if not match or int(match.group(1)) <= 0 or float(match.group(2)) <= 0:
            raise ValueError(f"rate limit must be N/SECONDS (e.g. 100/10) or 'off', not {text!r}")
        return cls(int(match.group(1)), float(match.group(2)))

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}"


class RollingWindowLimiter:
    """A sliding log per key: at most ``spec.requests`` in any ``spec.seconds``."""

    def __init__(self, spec: RateLimitSpec, clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self._clock = clock
        self._log: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def hit(self, key: str) -> tuple[bool, int, int]:
        """Record a request; returns (allowed, remaining, seconds until a slot frees)."""
        now = self._clock()
        log = self._log[key]
        while log and log[0] <= now - self.spec.seconds:
            log.popleft()
        allowed = len(log) < self.spec.requests
        if allowed:
            log.append(now)
        remaining = self.spec.requests - len(log)
        reset = int(max(0.0, log[0] + self.spec.seconds - now) + 0.999) if log else 0
        return allowed, remaining, reset

    def peek(self, key: str) -> tuple[int, int]:
        """(remaining, seconds until a slot frees) without recording a request."""
        now = self._clock()
        log = self._log.get(key) or ()
        live = [t for t in log if t > now - self.spec.seconds]
        reset = int(max(0.0, live[0] + self.spec.seconds - now) + 0.999) if live else 0
        return self.spec.requests - len(live), reset


#: Envelopes of a list response whose records a rewriting fault may touch (Tripletex, Svenn).
LIST_ENVELOPES = ("values", "data")


@dataclass
class Fault:
    """The next ``count`` matching requests wait ``delay_ms``, then fail with ``status``.

    ``after_commit`` makes it a *late commit*: the request is carried out and committed
    first, then the delay and status apply to its response, so a client that gave up
    (read timeout, 5xx) never learns that the write landed (G5). ``commit_delay_ms``
    (with ``after_commit`` only) is a *slow* commit: the request is carried out that much
    later, even when the client has gone meanwhile (what the real APIs do with a request
    they have received).

    Or, without ``status``, their successful JSON answer is rewritten: records whose id is
    in ``hide_ids`` are left out of a list page, those in ``null_ids`` come with
    ``"id": null``, and the top-level ``drop_fields`` are removed (a broken envelope).
    """

    path: re.Pattern[str]
    method: str | None = None
    status: int | None = None
    count: int = 1
    delay_ms: int = 0
    after_commit: bool = False
    commit_delay_ms: int = 0
    hide_ids: frozenset[int] = frozenset()
    null_ids: frozenset[int] = frozenset()
    drop_fields: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise SandboxError("a fault needs 'path' (a regular expression)")
        try:
            pattern = re.compile(body["path"])
        except re.error as exc:
            raise SandboxError(f"'path' is not a valid regular expression: {exc}") from exc
        status = body.get("status")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise SandboxError("'status' must be an HTTP status code")
        count, delay = body.get("count", 1), body.get("delay_ms", 0)
        if not isinstance(count, int) or count < 1:
            raise SandboxError("'count' must be a positive integer")
        if not isinstance(delay, int) or delay < 0:
            raise SandboxError("'delay_ms' must be a non-negative integer")
        after_commit, commit_delay = body.get("after_commit", False), body.get("commit_delay_ms", 0)
        if not isinstance(after_commit, bool):
            raise SandboxError("'after_commit' must be true or false")
        if not isinstance(commit_delay, int) or commit_delay < 0:
            raise SandboxError("'commit_delay_ms' must be a non-negative integer")
        if commit_delay and not after_commit:
            raise SandboxError("'commit_delay_ms' needs 'after_commit': true")
        method = body.get("method")
        fault = cls(
            pattern,
            method.upper() if method else None,
            status,
            count,
            delay,
            after_commit=after_commit,
            commit_delay_ms=commit_delay,
        )
        fault.read_rewrites(body)
        return fault

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.search(path))

    # -- rewriting a response body ----------------------------------------------------------
    def read_rewrites(self, body: dict[str, Any]) -> None:
        """``hide_ids``/``null_ids`` (lists of record ids), ``drop_fields`` (list of names)."""
        for name in ("hide_ids", "null_ids"):
            ids = body.get(name, [])
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise SandboxError(f"'{name}' must be a list of record ids")
            setattr(self, name, frozenset(ids))
        drop = body.get("drop_fields", [])
        if not isinstance(drop, list) or not all(isinstance(f, str) for f in drop):
            raise SandboxError("'drop_fields' must be a list of field names")
        self.drop_fields = tuple(drop)

    @property
    def rewrites(self) -> bool:
        return bool(self.hide_ids or self.null_ids or self.drop_fields)

    def rewrite(self, payload: Any) -> Any:
        """The answer as the fault shows it; a list page's digest changes with its records,
        so a later conditional GET of the true page is not answered 304."""
        if not isinstance(payload, dict):
            return payload
        out = {k: v for k, v in payload.items() if k not in self.drop_fields}
        for envelope in LIST_ENVELOPES:
            records = out.get(envelope)
            if not isinstance(records, list):
                continue
            shown = [
                {**r, "id": None} if isinstance(r, dict) and r.get("id") in self.null_ids else r
                for r in records
                if not (isinstance(r, dict) and r.get("id") in self.hide_ids)
            ]
            if shown != records and isinstance(out.get("versionDigest"), str):
                out["versionDigest"] = "fault-" + out["versionDigest"]
            out[envelope] = shown
        return out


@dataclass
class Stats:
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    writes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"requests": dict(sorted(self.requests.items())), "writes": self.writes}


class SandboxHub:
    """Companies, faults, statistics and persistence of one sandbox server.

    Subclasses set the class attributes and implement :meth:`build_company`,
    :meth:`company_key` and :meth:`error_response`.
    """

    name: str = "sandbox"
    api_prefix: str = "/api"
    key_field: str = "key"
    #: Path templates (without prefix) of record resources whose writes count in stats.
    write_resources: tuple[str, ...] = ()
    #: Rate-limit headers: (limit, remaining, reset) header names.
    rate_limit_headers: tuple[str, str, str] = (
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    )
    #: Window announced in the rate-limit headers while limiting is off (it never refuses);
    #: None sends no rate-limit headers then.
    nominal_rate_limit: RateLimitSpec | None = None
    #: How long a failing webhook delivery is retried (Svenn: 24 h, Tripletex: about 30 h).
    webhook_horizon_s: float = 24 * 3600

    def __init__(
        self,
        *,
        startup_key: str,
        startup_seed: str = "demo",
        seed_options: dict[str, Any] | None = None,
        state_file: str | Path | None = None,
        rate_limit: RateLimitSpec | None = None,
    ):
        self.startup_key = startup_key
        self.state_file = Path(state_file) if state_file else None
        self.limiter = RollingWindowLimiter(rate_limit) if rate_limit else None
        self.faults: list[Fault] = []
        self.stats: dict[str, Stats] = collections.defaultdict(Stats)
        self.companies: dict[str, Any] = {}
        self._dirty = False
        self._save_lock = threading.Lock()
        self.webhooks = WebhookDispatcher(horizon_s=self.webhook_horizon_s)
        if not (self.state_file and self._load_state()):
            self.create_company(startup_key, startup_seed, seed_options or {})

    # -- to implement per API -------------------------------------------------------------
    def build_company(self, key: str, seed: str, options: dict[str, Any]) -> Any:
        raise NotImplementedError

    def company_key(self, scope: dict[str, Any]) -> str | None:
        """The company a request belongs to (from its credentials), or None."""
        raise NotImplementedError

    def error_response(self, status: int, message: str | None = None) -> Response:
        """The API's own error body for an injected fault or a rate-limit refusal."""
        raise NotImplementedError

    def configure_webhooks(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_sandbox/webhooks``: retry settings (a sandbox may add its own)."""
        return self.webhooks.configure(body)

    def flush_webhooks(self, key: str, scope: dict[str, Any]) -> None:
        """Hand the events the request's writes queued in the company to the dispatcher
        (called after every API request of a known company; the base has no webhooks)."""

    # -- companies ------------------------------------------------------------------------
    def create_company(self, key: str, seed: str, options: dict[str, Any]) -> Any:
        if not isinstance(key, str) or not key.strip():
            raise SandboxError(f"'{self.key_field}' must be a non-empty string")
        if seed not in SEEDS:
            raise SandboxError(f"'seed' must be one of {', '.join(SEEDS)}")
        company = self.build_company(key, seed, options)
        self.companies[key] = company
        self.mark_dirty()
        return company

    @staticmethod
    def world_for(seed: str, options: dict[str, Any]):
        """The generated world behind the ``demo`` and ``world`` seeds (both sandboxes draw
        their side of the same matched world from the same seed and scale)."""
        from sync_pipeline.generator import DEMO_SEED, generate_world

        if seed == "demo":
            return generate_world(DEMO_SEED, "demo")
        world_seed = options.get("world_seed")
        try:
            return generate_world(
                DEMO_SEED if world_seed is None else int(world_seed), options.get("scale") or "demo"
            )
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"cannot generate the world: {exc}") from exc

    def reset(self) -> None:
        startup = self.companies.get(self.startup_key)
        self.companies = {self.startup_key: startup} if startup is not None else {}
        self.faults.clear()
        self.stats.clear()
        self.webhooks.clear()
        if self.limiter:
            self.limiter = RollingWindowLimiter(self.limiter.spec)
        self.mark_dirty()

    # -- persistence ----------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    def snapshot(self) -> bytes | None:
        """Pickle all companies if anything changed; call it on the event loop's thread,
        where no request can change the data halfway through."""
        if not self.state_file or not self._dirty:
            return None
        self._dirty = False
        return pickle.dumps({"name": self.name, "companies": self.companies}, protocol=5)

    def write_snapshot(self, data: bytes) -> None:
        """Write a snapshot atomically (temp file + rename); safe in a worker thread."""
        with self._save_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".sandbox-state-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.state_file)

    def save_state(self) -> None:
        data = self.snapshot()
        if data is not None:
            self.write_snapshot(data)

    def _load_state(self) -> bool:
        if not self.state_file.exists():
            return False
        with self.state_file.open("rb") as fh:
            state = pickle.load(fh)
        if state.get("name") != self.name:
            raise SystemExit(
                f"{self.state_file} holds a {state.get('name')} sandbox, not {self.name}"
            )
        self.companies = state["companies"]
        return True

    # -- rate limiting --------------------------------------------------------------------
    def rate_limit(
        self, key: str | None, *, consume: bool = True
    ) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """Whether a request may proceed, and the rate-limit headers of its response.

        A refusal also carries ``Retry-After``. ``consume=False`` reports the window
        without counting the request (for responses of injected faults).
        """
        if self.limiter is not None:
            limit = self.limiter.spec.requests
            if consume:
                allowed, remaining, reset = self.limiter.hit(key or "-")
            else:
                allowed, (remaining, reset) = True, self.limiter.peek(key or "-")
        elif self.nominal_rate_limit is not None:
            limit = remaining = self.nominal_rate_limit.requests
            allowed, reset = True, 0
        else:
            return True, []
        limit_h, remaining_h, reset_h = self.rate_limit_headers
        headers = [
            (limit_h.encode(), str(limit).encode()),
            (remaining_h.encode(), str(remaining).encode()),
            (reset_h.encode(), str(reset).encode()),
        ]
        if not allowed:
            headers.append((b"Retry-After", str(max(reset, 1)).encode()))
        return allowed, headers

    # -- statistics -----------------------------------------------------------------------
    def record(self, key: str | None, method: str, template: str, writes: int = 1) -> None:
        """Count a request; a write to a record resource adds ``writes`` (a bulk's N)."""
        stats = self.stats[key or "-"]
        stats.requests[f"{method} {template}"] += 1
        if method in ("POST", "PUT", "PATCH", "DELETE") and self.is_write_template(template):
            stats.writes += writes
            self.mark_dirty()

    def is_write_template(self, template: str) -> bool:
        rest = (
            template[len(self.api_prefix) :] if template.startswith(self.api_prefix) else template
        )
        return any(rest == r or rest.startswith(r + "/") for r in self.write_resources)

    def stats_json(self, key: str | None) -> dict[str, Any]:
        if key is not None:
            return self.stats[key].as_json() if key in self.stats else Stats().as_json()
        total = Stats()
        for key_, stats in self.stats.items():
            if key_ != "-" or stats.requests:
                total.requests.update(stats.requests)
                total.writes += stats.writes
        return total.as_json()


#: ASGI scope key: how many record writes one request carries when not one (a bulk's N).
WRITES_IN_REQUEST = "sandbox.writes"


def count_writes(scope: dict[str, Any], writes: int) -> None:
    """Let the statistics count this request as ``writes`` writes (it is still one request
    for the rate limit, which was charged before the handler ran)."""
    scope[WRITES_IN_REQUEST] = writes


class SandboxMiddleware:
    """Faults, rate limiting and request statistics for the API routes (pure ASGI)."""

    def __init__(self, app: Any, hub: SandboxHub):
        self.app = app
        self.hub = hub

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.hub.api_prefix):
            await self.app(scope, receive, send)
            return
        hub = self.hub
        method, path = scope["method"], scope["path"]
        key = hub.company_key(scope)
        try:
            fault = next((f for f in hub.faults if f.matches(method, path)), None)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    hub.faults.remove(fault)
                if fault.after_commit:
                    await self._late_commit(fault, key, scope, receive, send)
                    return
                if fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                if fault.status is not None:
                    _, headers = hub.rate_limit(key, consume=False)
                    if fault.status == 429:
                        headers.append((b"Retry-After", b"1"))
                    response = hub.error_response(fault.status)
                    await response(scope, receive, _adding_headers(send, headers))
                    return
                if fault.rewrites:  # a full answer to rewrite, never a 304
                    scope = _without_header(scope, b"if-none-match")
                    send = _rewriting(send, fault)
            allowed, headers = hub.rate_limit(key)
            if not allowed:
                await hub.error_response(429)(scope, receive, _adding_headers(send, headers))
                return
            await self.app(scope, receive, _adding_headers(send, headers))
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or path
            hub.record(key, method, template, scope.get(WRITES_IN_REQUEST, 1))
            if key is not None and key in hub.companies:
                hub.flush_webhooks(key, scope)

    async def _late_commit(
        self, fault: Fault, key: str | None, scope: dict, receive: Callable, send: Callable
    ) -> None:
        """Carry the request out (whether or not its client is still there), then delay
        and/or replace the response as the fault says."""
        hub = self.hub
        replay = await _buffered_receive(receive)
        if replay is None:  # the client left before its request had fully arrived
            return
        if fault.commit_delay_ms:
            await asyncio.sleep(fault.commit_delay_ms / 1000)
        allowed, headers = hub.rate_limit(key)
        if not allowed:  # refused: nothing was carried out, so nothing is late either
            await hub.error_response(429)(scope, receive, _adding_headers(send, headers))
            return
        held: list[dict] = []

        async def hold(message: dict) -> None:
            held.append(message)

        await self.app(scope, replay, _adding_headers(hold, headers))
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.status is None:
            for message in held:
                await send(message)
            return
        _, headers = hub.rate_limit(key, consume=False)
        await hub.error_response(fault.status)(scope, receive, _adding_headers(send, headers))


async def _buffered_receive(receive: Callable) -> Callable | None:
    """Read the whole request body now; the returned ``receive`` replays it, so the app
    can carry the request out even after the client disconnected (None: it left before
    the body had fully arrived)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> dict:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _adding_headers(send: Callable, headers: list[tuple[bytes, bytes]]) -> Callable:
    """Wrap ``send`` to add ``headers`` to the response, unless the app set them itself."""
    if not headers:
        return send

    async def send_with_headers(message: dict) -> None:
        if message["type"] == "http.response.start":
            own = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in headers if n.lower() not in own]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_headers


def _without_header(scope: dict, name: bytes) -> dict:
    return {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != name]}


def _rewriting(send: Callable, fault: Fault) -> Callable:
    """Wrap ``send`` to pass a successful JSON answer through ``fault.rewrite``."""
    start: dict | None = None
    chunks: list[bytes] = []

    async def send_rewritten(message: dict) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message["status"] == 200:
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        with contextlib.suppress(ValueError):  # not JSON: passed on as it was
            body = json.dumps(fault.rewrite(json.loads(body)), ensure_ascii=False).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return send_rewritten


def control_router(hub: SandboxHub) -> APIRouter:
    """The ``/_sandbox`` endpoints, identical in both sandboxes but for the key's name."""
    router = APIRouter(prefix="/_sandbox", include_in_schema=False)

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SandboxError(f"body is not JSON: {exc}") from exc

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"service": hub.name, "companies": len(hub.companies)}

    @router.post("/companies", status_code=201)
    async def register_company(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        if not isinstance(body, dict):
            raise SandboxError("body must be a JSON object")
        key = body.get(hub.key_field)
        seed = body.get("seed", "demo")
        options = {k: v for k, v in body.items() if k not in (hub.key_field, "seed")}
        hub.create_company(key, seed, options)
        return {hub.key_field: key, "seed": seed}

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        hub.reset()
        return {"companies": list(hub.companies)}

    @router.post("/faults", status_code=201)
    async def add_fault(request: Request) -> dict[str, Any]:
        hub.faults.append(Fault.from_json(await body_of(request)))
        return {"faults": len(hub.faults)}

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        hub.faults.clear()
        return {"faults": 0}

    @router.get("/webhooks")
    async def webhook_log() -> dict[str, Any]:
        return hub.webhooks.status()

    @router.post("/webhooks")
    async def webhook_settings(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        if not isinstance(body, dict):
            raise SandboxError("body must be a JSON object")
        return hub.configure_webhooks(body)

    @router.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        return hub.stats_json(request.query_params.get(hub.key_field))

    return router


def install(app: FastAPI, hub: SandboxHub) -> FastAPI:
    """Wire the shared machinery into an API app: control routes, middleware, persistence."""
    app.include_router(control_router(hub))
    app.add_middleware(SandboxMiddleware, hub=hub)
    app.state.hub = hub

    @app.exception_handler(SandboxError)
    async def sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    if hub.state_file:

        async def autosave() -> None:
            while True:
                await asyncio.sleep(0.5)
                data = hub.snapshot()
                if data is not None:
                    await asyncio.to_thread(hub.write_snapshot, data)

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI):
            task = asyncio.create_task(autosave())
            try:
                yield
            finally:
                task.cancel()
                hub.save_state()
                hub.webhooks.close()

        app.router.lifespan_context = lifespan
    return app
