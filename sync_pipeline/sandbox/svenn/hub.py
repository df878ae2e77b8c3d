"""The Svenn sandbox's hub: companies keyed by API key, seeded empty or from a generated world."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from fastapi.responses import Response

from sync_pipeline.sandbox.core import RateLimitSpec, SandboxError, SandboxHub
from sync_pipeline.sandbox.svenn.errors import error_response
from sync_pipeline.sandbox.svenn.fields import RESOURCES
from sync_pipeline.sandbox.svenn.store import Company, dump_json
from sync_pipeline.sandbox.webhooks import Delivery

API_PREFIX = "/api/v1"


class SvennHub(SandboxHub):
    name = "svenn"
    api_prefix = API_PREFIX
    key_field = "api_key"
    write_resources = tuple(f"/{resource}" for resource in RESOURCES)
    # svenn-api.md promises RateLimit-* headers on every response, limited or not.
    nominal_rate_limit = RateLimitSpec(1_000_000, 60)

    def build_company(self, key: str, seed: str, options: dict[str, Any]) -> Company:
        """``empty``: no records; ``demo``/``world``: the Svenn side of a generated world.

        Options for ``empty``: ``name``, ``organization_number`` of the company.
        """
        company_id = max((c.id for c in self.companies.values()), default=0) + 1
        if seed == "empty":
            return Company(
                id=company_id,
                name=options.get("name") or f"Sandbox company {company_id}",
                organization_number=options.get("organization_number"),
            )
        world = self.world_for(seed, options)
        company = Company(
            id=company_id,
            name=world.company["name"],
            organization_number=world.company.get("organization_number"),
        )
        try:
            for resource in ("employees", "customers", "projects"):
                company.load(resource, world.svenn.get(resource, []))
        except ValueError as exc:
            raise SandboxError(f"the generated world does not fit the Svenn API: {exc}") from exc
        return company

    def company_key(self, scope: dict[str, Any]) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, key = value.decode("latin-1").partition(" ")
                key = key.strip()
                if scheme.lower() == "bearer" and key in self.companies:
                    return key
                return None
        return None

    def company(self, key: str) -> Company:
        return self.companies[key]

    def error_response(self, status: int, message: str | None = None) -> Response:
        return error_response(status, message=message)

    def flush_webhooks(self, key: str, scope: dict[str, Any]) -> None:
        """One signed delivery per queued event and subscription (svenn-api.md "Webhooks"):
        the body names the record and its version, never its fields."""
        company = self.companies[key]
        for event, record_id, version, occurred_at in company.take_events():
            for hook in company.webhooks:
                if event not in hook["events"]:
                    continue
                delivery_id = str(uuid.uuid4())
                body = dump_json(
                    {
                        "id": delivery_id,
                        "event": event,
                        "occurred_at": occurred_at,
                        "data": {"id": record_id, "version": version},
                    }
                )
                signature = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
                self.webhooks.submit(
                    Delivery(
                        delivery_id,
                        hook["url"],
                        body,
                        {"Svenn-Delivery": delivery_id, "Svenn-Signature": f"sha256={signature}"},
                        event,
                        wanted=lambda c=company, h=hook: h in c.webhooks,
                    )
                )
