"""The Tripletex hub: companies keyed by employee token, sessions, and list caching."""

from __future__ import annotations

import base64
import binascii
import gc
from typing import Any

from starlette.responses import Response

from sync_pipeline.sandbox.core import RateLimitSpec, SandboxError, SandboxHub
from sync_pipeline.sandbox.tripletex import errors as E
from sync_pipeline.sandbox.tripletex.events import DEFAULT_DISABLE_AFTER, deliveries
from sync_pipeline.sandbox.tripletex.store import Company, empty_company, world_company

Session = dict[str, Any]


def synthetic_company(key: str, projects: int, customers: int) -> Company:
    """An empty company plus N plain projects and customers (benchmarks; no generator needed)."""
    company = empty_company(key)
    for i in range(1, customers + 1):
        company.insert("customer", {"name": f"Kunde {i} AS", "customerNumber": 10000 + i})
    for i in range(1, projects + 1):
        company.insert(
            "project",
            {
                "name": f"Prosjekt {i}",
                "number": str(i),
                "startDate": "2026-01-01",
                "projectManager": company.owner_id,
                "customer": ((i - 1) % customers) + 1 if customers else None,
            },
        )
    return company


def _freeze_heap() -> None:
    """Move the loaded records out of the cyclic GC's reach.

    A world holds hundreds of thousands of small dicts; left to the collector, every full
    collection rescans them all and a page of 1,000 default-field customers took 40× longer.
    """
    gc.collect()
    gc.freeze()


class TripletexHub(SandboxHub):
    name = "tripletex"
    api_prefix = "/v2"
    key_field = "employee_token"
    write_resources = ("/project", "/customer", "/employee")
    rate_limit_headers = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")
    #: The real API sends the headers on every response; with the limit off, from a
    #: window no client can exhaust.
    nominal_rate_limit = RateLimitSpec(1_000_000, 10)
    #: Tripletex retries a failing delivery for about 30 hours (API-NOTES 8.6).
    webhook_horizon_s = 30 * 3600

    def __init__(self, *, max_result_set: int | None = None, **kwargs: Any):
        self.max_result_set = max_result_set
        #: Consecutive failed deliveries that disable a subscription (events.py).
        self.disable_after = DEFAULT_DISABLE_AFTER
        self._sessions: dict[str, str] = {}  # session token → company key
        #: (company key, table, filters, sorting) → (company revision, records)
        self.list_cache: dict[tuple, tuple[int, list]] = {}
        super().__init__(**kwargs)

    # -- SandboxHub hooks -----------------------------------------------------------------
    def build_company(self, key: str, seed: str, options: dict[str, Any]) -> Company:
        company = self._build_company(key, seed, options)
        _freeze_heap()
        return company

    def _load_state(self) -> bool:
        loaded = super()._load_state()
        _freeze_heap()
        return loaded

    def _build_company(self, key: str, seed: str, options: dict[str, Any]) -> Company:
        if options.get("synthetic_projects") or options.get("synthetic_customers"):
            return synthetic_company(
                key,
                int(options.get("synthetic_projects") or 0),
                int(options.get("synthetic_customers") or 0),
            )
        if seed == "empty":
            return empty_company(key)
        return world_company(key, self.world_for(seed, options))

    def company_key(self, scope: dict[str, Any]) -> str | None:
        auth = self.authenticate(scope)
        return auth[0] if auth else None

    def error_response(self, status: int, message: str | None = None) -> Response:
        return E.status_error(status, message).response()

    def rate_limit(
        self, key: str | None, *, consume: bool = True
    ) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """As the core's, but a 429 lacks ``X-Rate-Limit-Reset``, as Tripletex's (ISS103)."""
        allowed, headers = super().rate_limit(key, consume=consume)
        if not allowed:
            reset = self.rate_limit_headers[2].encode()
            headers = [(name, value) for name, value in headers if name != reset]
        return allowed, headers

    def is_write_template(self, template: str) -> bool:
        return template != "/v2/project/settings" and super().is_write_template(template)

    def reset(self) -> None:
        super().reset()
        self.list_cache.clear()

    # -- webhooks -------------------------------------------------------------------------
    def configure_webhooks(self, body: dict[str, Any]) -> dict[str, Any]:
        disable_after = body.get("disable_after", self.disable_after)
        if not isinstance(disable_after, int) or disable_after < 1:
            raise SandboxError("'disable_after' must be a positive integer")
        settings = super().configure_webhooks(body)
        self.disable_after = disable_after
        return {**settings, "disable_after": disable_after}

    def flush_webhooks(self, key: str, scope: dict[str, Any]) -> None:
        company = self.companies[key]
        if "outbox" not in company.__dict__:
            return
        host = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"host"), "")
        for delivery in deliveries(self, company, host or "tripletex.sandbox"):
            self.webhooks.submit(delivery)

    # -- sessions -------------------------------------------------------------------------
    def add_session(self, company: Company, session: Session) -> None:
        self._sessions[session["token"]] = company.key
        self.mark_dirty()

    def session(self, token: str) -> tuple[str, Session] | None:
        key = self._sessions.get(token)
        if key is None:  # after a restart from a state file: rebuild the index once per miss
            self._sessions = {t: k for k, c in self.companies.items() for t in c.sessions}
            key = self._sessions.get(token)
        company = self.companies.get(key) if key else None
        if company is None or token not in company.sessions:
            return None
        return key, company.sessions[token]

    def authenticate(self, scope: dict[str, Any]) -> tuple[str, Session] | None:
        """(company key, session) from ``Authorization: Basic base64("0:<token>")``, cached."""
        if "tlx.auth" in scope:
            return scope["tlx.auth"]
        result = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                result = self._basic(value)
                break
        scope["tlx.auth"] = result
        return result

    def _basic(self, header: bytes) -> tuple[str, Session] | None:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, token = decoded.partition(":")
        if not sep:
            return None
        found = self.session(token)
        if found is None:
            return None
        company = self.companies[found[0]]
        # Username 0 or blank: the token owner's own company (API-NOTES 2.3); its own id too.
        if username.strip() not in ("", "0", str(company.company_id)):
            return None
        return found
