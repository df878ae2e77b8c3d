"""A tenant's webhook subscriptions on both sides, created or repaired by the sync itself.

``ensure`` is idempotent: run it again and nothing changes but what was wrong. Tripletex
needs one subscription per event (API-NOTES 8.3); one whose status is ``DISABLED_*``
(too many failed deliveries while the receiver was down) is set ``ACTIVE`` again with a
PUT, and every kept subscription gets the tenant's ``hmacSharedSecret`` re-sent (it is
write-only, so it cannot be compared). Svenn takes one subscription for all nine events;
its secret cannot be read back or changed, so a subscription for another set of events is
replaced, and ``rotate_svenn=True`` replaces it to change the secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sync_pipeline.tenants import TenantConfig, TenantConfigError
from sync_pipeline.webhooks.app import ENTITIES

TRIPLETEX_EVENTS = tuple(f"{e}.{v}" for e in ENTITIES for v in ("create", "update", "delete"))
SVENN_EVENTS = tuple(f"{e}.{v}" for e in ENTITIES for v in ("created", "updated", "deleted"))
#: The fields a Tripletex delivery carries: the receiver stores only id and version.
TRIPLETEX_FIELDS = "id,version"


@dataclass
class Change:
    system: str
    what: str  # 'created' | 're-enabled' | 'kept' | 'replaced' | 'deleted duplicate'
    detail: str

    def __str__(self) -> str:
        return f"{self.system}: {self.what} {self.detail}"


def receiver_url(public_url: str, system: str, tenant: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/{system}/{tenant}"


def check_public_url(public_url: str) -> None:
    """HTTPS, as both systems require; http only for a loopback receiver (the sandboxes)."""
    parts = urlsplit(public_url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise TenantConfigError(
            f"--public-url {public_url!r} must be an https:// URL (http only on a loopback host)"
        )


def _secret(tenant: TenantConfig, system: str) -> str:
    secret = tenant.webhook_secret(system)
    if secret is None:
        raise TenantConfigError(
            f"tenant '{tenant.key}': webhooks.{system}_secret is not set in the tenants file"
        )
    return secret


def ensure(tenant: TenantConfig, public_url: str, *, rotate_svenn: bool = False) -> list[Change]:
    check_public_url(public_url)
    return [
        *ensure_tripletex(tenant, public_url),
        *ensure_svenn(tenant, public_url, rotate=rotate_svenn),
    ]


def ensure_tripletex(tenant: TenantConfig, public_url: str) -> list[Change]:
    secret = _secret(tenant, "tripletex")
    target = receiver_url(public_url, "tripletex", tenant.key)
    client = tenant.tripletex_client()
    try:
        existing = [
            s for page in client.iter_pages("/event/subscription", fields="*") for s in page
        ]
        changes: list[Change] = []
        for event in TRIPLETEX_EVENTS:
            mine = [s for s in existing if s.get("event") == event and s.get("targetUrl") == target]
            for extra in mine[1:]:
                client.delete(f"/event/subscription/{extra['id']}")
                changes.append(Change("tripletex", "deleted duplicate", f"{event} #{extra['id']}"))
            if not mine:
                created = client.post(
                    "/event/subscription",
                    {
                        "event": event,
                        "targetUrl": target,
                        "fields": TRIPLETEX_FIELDS,
                        "hmacSharedSecret": secret,
                    },
                )
                changes.append(Change("tripletex", "created", f"{event} #{created['id']}"))
                continue
            sub = mine[0]
            was = sub.get("status")
            client.put(
                f"/event/subscription/{sub['id']}",
                {"status": "ACTIVE", "hmacSharedSecret": secret, "fields": TRIPLETEX_FIELDS},
            )
            what = "re-enabled" if was != "ACTIVE" else "kept"
            changes.append(Change("tripletex", what, f"{event} #{sub['id']} (was {was})"))
        return changes
    finally:
        client.close()


def _svenn_list(client: Any) -> list[dict[str, Any]]:
    # The client has no generic GET (its reads are per record resource); one private call.
    return client._request("GET", "/webhooks").json()["data"]


def ensure_svenn(tenant: TenantConfig, public_url: str, *, rotate: bool = False) -> list[Change]:
    secret = _secret(tenant, "svenn")
    target = receiver_url(public_url, "svenn", tenant.key)
    client = tenant.svenn_client()
    try:
        mine = [h for h in _svenn_list(client) if h.get("url") == target]
        keep = next(
            (h for h in mine if set(h.get("events") or ()) == set(SVENN_EVENTS) and not rotate),
            None,
        )
        changes: list[Change] = []
        for hook in mine:
            if hook is not keep:
                client.delete("webhooks", hook["id"])
                changes.append(Change("svenn", "replaced", f"#{hook['id']}"))
        if keep is None:
            created = client.create(
                "webhooks", {"url": target, "events": list(SVENN_EVENTS), "secret": secret}
            )
            changes.append(
                Change("svenn", "created", f"#{created['id']} ({len(SVENN_EVENTS)} events)")
            )
        else:
            changes.append(Change("svenn", "kept", f"#{keep['id']}"))
        return changes
    finally:
        client.close()


def status(tenant: TenantConfig, public_url: str | None = None) -> dict[str, Any]:
    """Each side's subscriptions to this tenant's receiver (or to any URL naming the
    tenant when ``public_url`` is None), for ``webhooks status`` and ``tenants``."""
    out: dict[str, Any] = {}
    suffixes = {s: f"/webhooks/{s}/{tenant.key}" for s in ("tripletex", "svenn")}
    if tenant.webhook_secret("tripletex") is not None:
        client = tenant.tripletex_client()
        try:
            subs = [
                s for page in client.iter_pages("/event/subscription", fields="*") for s in page
            ]
        finally:
            client.close()
        out["tripletex"] = {
            s["event"]: s["status"]
            for s in subs
            if str(s.get("targetUrl", "")).endswith(suffixes["tripletex"])
            and (public_url is None or s["targetUrl"].startswith(public_url.rstrip("/")))
        }
    if tenant.webhook_secret("svenn") is not None:
        client = tenant.svenn_client()
        try:
            hooks = _svenn_list(client)
        finally:
            client.close()
        out["svenn"] = {
            str(h["id"]): sorted(h["events"])
            for h in hooks
            if str(h.get("url", "")).endswith(suffixes["svenn"])
        }
    return out
