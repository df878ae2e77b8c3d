"""The tenants file: which Svenn companies are synced with which Tripletex account.

A tenant is one Svenn company with the integration switched on (SYNC-RULES §0).
The file (``SYNC_TENANTS_FILE``, default ``data/tenants.yaml``) holds each
tenant's API addresses and credentials; credentials are normally ``${VAR}``
references so the file itself can be committed without secrets. Any problem
with the file is reported as one ``TenantConfigError`` line naming the tenant
and field, never the secret value.

A run validates only its own tenant (``load_tenant``), so one tenant's broken entry does not
stop the others' runs; listings (``load_tenants``: CLI, schedules, sensors) validate all of
them and report it. The parsed file is kept per process until the file changes.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient

TENANTS_FILE_ENV = "SYNC_TENANTS_FILE"
DEFAULT_TENANTS_FILE = "data/tenants.yaml"

#: Tenant keys name partitions, locks and export folders: no whitespace, no line break.
_TENANT_KEY_RE = re.compile(r"[a-z0-9_-]+")
_VAR_RE = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TenantConfigError(ValueError):
    """The tenants file cannot be used; the message is one line for an operator."""


def _control_characters(value: str) -> bool:
    """A line break, tab or other control character (e.g. a CR/LF from a file saved on
    Windows, or a ``$(cat file)`` that kept the newline)."""
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def _check_secret(v: SecretStr) -> SecretStr:
    """The API would refuse such a secret with 401; say what is wrong, never the value."""
    text = v.get_secret_value()
    if not text.strip():
        raise ValueError("must not be empty")
    if _control_characters(text):
        raise ValueError(
            "contains a line break or other control character (check the value, e.g. a "
            "trailing CR/LF in the environment variable)"
        )
    if text != text.strip():
        raise ValueError("has leading or trailing spaces")
    return v


def _check_url(value: str) -> str:
    if _control_characters(value):
        raise ValueError("contains a line break or other control character")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query or fragment")
    return value.rstrip("/")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SvennSettings(_Settings):
    base_url: str
    api_key: SecretStr

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("api_key")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        return _check_secret(v)


class TripletexSettings(_Settings):
    base_url: str
    consumer_token: SecretStr
    employee_token: SecretStr

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("consumer_token", "employee_token")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        return _check_secret(v)


def _secret_length(v: SecretStr | None, low: int, high: int) -> SecretStr | None:
    if v is None:
        return None
    _check_secret(v)
    if not low <= len(v.get_secret_value()) <= high:
        raise ValueError(f"must be {low}–{high} characters")
    return v


class WebhookSettings(_Settings):
    """The shared secrets that sign each system's webhook deliveries (issue 15): Tripletex's
    ``hmacSharedSecret`` (10–100 characters, API-NOTES 8.2) and Svenn's subscription secret
    (16–128, svenn-api.md). A system without its secret gets no webhooks (404)."""

    tripletex_secret: SecretStr | None = None
    svenn_secret: SecretStr | None = None

    @field_validator("tripletex_secret")
    @classmethod
    def _tripletex(cls, v: SecretStr | None) -> SecretStr | None:
        return _secret_length(v, 10, 100)

    @field_validator("svenn_secret")
    @classmethod
    def _svenn(cls, v: SecretStr | None) -> SecretStr | None:
        return _secret_length(v, 16, 128)

    def secret(self, system: str) -> str | None:
        value = self.tripletex_secret if system == "tripletex" else self.svenn_secret
        return value.get_secret_value() if value is not None else None


class TenantConfig(_Settings):
    """One tenant. ``mode`` is G9 (review = plan only); the optional fields tune P10, E4, G2, G7
    (deletions are held only above both the threshold share and the minimum count) and G12."""

    key: str
    mode: Literal["active", "review"]
    svenn: SvennSettings
    tripletex: TripletexSettings
    default_project_manager_employee_number: str | None = None
    # Strict numbers: YAML's ``true`` is not 1 (pydantic would otherwise accept it).
    default_department_id: int | None = Field(default=None, gt=0, strict=True)
    conflict_policy: Literal["newest_wins", "tripletex_wins", "svenn_wins"] = "newest_wins"
    mass_delete_threshold: float = Field(default=0.2, gt=0, le=1, strict=True)
    mass_delete_min_count: int = Field(default=5, ge=1, strict=True)
    mass_create_threshold: float = Field(default=0.2, gt=0, le=1, strict=True)
    mass_create_min_records: int = Field(default=5, ge=1, strict=True)
    employee_user_type: Literal["NO_ACCESS", "STANDARD", "EXTENDED"] = "NO_ACCESS"
    webhooks: WebhookSettings | None = None

    def webhook_secret(self, system: str) -> str | None:
        """The secret of ``system``'s deliveries to this tenant, or None (no webhooks)."""
        return self.webhooks.secret(system) if self.webhooks is not None else None

    def tripletex_client(self, **overrides: Any) -> TripletexClient:
        """A Tripletex client with this tenant's credentials (``overrides``: other client fields)."""
        return TripletexClient(
            base_url=self.tripletex.base_url,
            consumer_token=self.tripletex.consumer_token.get_secret_value(),
            employee_token=self.tripletex.employee_token.get_secret_value(),
            **overrides,
        )

    def svenn_client(self, **overrides: Any) -> SvennClient:
        return SvennClient(
            base_url=self.svenn.base_url,
            api_key=self.svenn.api_key.get_secret_value(),
            **overrides,
        )


def tenants_file_path() -> Path:
    """``$SYNC_TENANTS_FILE`` or ``data/tenants.yaml`` (relative to the working directory)."""
    return Path(os.environ.get(TENANTS_FILE_ENV) or DEFAULT_TENANTS_FILE)


class _RefusedYaml(yaml.MarkedYAMLError):
    """YAML the tenants file does not allow (anchors, aliases, duplicate keys)."""


class _TenantsLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors/aliases and without duplicate keys.

    Aliases let 400 bytes expand into millions of nodes (every command and schedule tick
    reads this file), so the first anchor or alias is refused before anything is built.
    YAML keeps the last of two equal keys silently: a tenant pasted twice would lose
    its first settings without a word.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _RefusedYaml(
                problem="anchors and aliases (&, *) are not allowed",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base class reports it
                break
            if duplicate:
                raise _RefusedYaml(
                    problem=f"duplicate key '{_printable(key)}'",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _printable(value: Any) -> str:
    """``value`` for a one-line message: control characters (a newline…) escaped."""
    text = str(value)
    return text.encode("unicode_escape").decode("ascii") if _control_characters(text) else text


def _substitute(value: Any, where: str, fail: Any) -> Any:
    """Replace ``${VAR}`` in every string with the environment's value."""
    if isinstance(value, dict):
        return {
            k: _substitute(v, f"{where}.{k}" if where else str(k), fail) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", fail) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if not _VAR_NAME_RE.match(name):
            fail(where, f"'${{{match.group(1)}}}' is not a valid environment variable reference")
        env = os.environ.get(name)
        if env is None:
            fail(where, f"environment variable {name} is not set")
        return env

    return _VAR_RE.sub(replace, value)


def _describe(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def _fail(label: str, where: str, problem: str, tenant: str | None = None) -> NoReturn:
    prefix = f"{label}: " + (f"tenant '{tenant}': " if tenant else "")
    raise TenantConfigError(f"{prefix}{where + ': ' if where else ''}{problem}")


def _read_tenants(path: Path) -> dict[Any, Any]:
    """Parse the file and check its top level; return the ``tenants`` mapping, unvalidated."""
    label = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TenantConfigError(
            f"{path}: tenants file not found (set {TENANTS_FILE_ENV} or create it from "
            "data/tenants.template.yaml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TenantConfigError(
            f"{path}: cannot read tenants file ({type(exc).__name__})"
        ) from None
    try:
        raw = yaml.load(text, Loader=_TenantsLoader)  # a SafeLoader, stricter
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, _RefusedYaml):
            raise TenantConfigError(f"{label}: {where}: {problem}") from None
        raise TenantConfigError(f"{label}: {where}: invalid YAML ({problem})") from None

    if not isinstance(raw, dict):
        _fail(label, "", "must be a mapping with a 'tenants' key")
    unknown = sorted(str(k) for k in raw if k != "tenants")
    if unknown:
        _fail(label, unknown[0], "unknown key")
    tenants_raw = raw.get("tenants")
    if not isinstance(tenants_raw, dict) or not tenants_raw:
        _fail(
            label,
            "tenants",
            "must be a mapping of tenant key to settings, with at least one tenant",
        )
    return tenants_raw


#: Resolved path -> (stat stamp, parsed ``tenants`` mapping): the latest version of each file.
_parsed: dict[Path, tuple[tuple[int, int, int], dict[Any, Any]]] = {}
_parsed_lock = threading.Lock()


def _tenant_bodies(path: Path) -> dict[Any, Any]:
    """The file's ``tenants`` mapping, parsed once per version of the file in this process.

    A run asks for its tenant about nine times; parsing 2,000 tenants each time cost seconds.
    The stamp (mtime in ns, size, inode) changes with every edit or replacement, so an edit
    applies to the next use. The result is shared: read it, never change it (``_substitute``
    builds new containers). A file that fails to parse is not cached.
    """
    try:
        stat = path.stat()
    except OSError:
        return _read_tenants(path)  # reports the missing or unreadable file
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    key = path.resolve()
    with _parsed_lock:
        cached = _parsed.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        bodies = _read_tenants(path)
        _parsed[key] = (stamp, bodies)
        return bodies


def _validate_tenant(label: str, key: Any, body: Any) -> TenantConfig:
    """One tenant's entry: key, ``${VAR}`` substitution from the environment, settings."""
    key_text = _printable(key)

    def fail(where: str, problem: str) -> NoReturn:
        _fail(label, where, problem, tenant=key_text)

    if not isinstance(key, str) or not _TENANT_KEY_RE.fullmatch(key):
        fail("", "tenant key must match [a-z0-9_-]+")
    if not isinstance(body, dict):
        fail("", "must be a mapping of settings")
    if "key" in body:
        fail("key", "unknown key (the tenant key is the mapping key)")
    resolved = _substitute(body, "", fail)
    try:
        return TenantConfig.model_validate({**resolved, "key": key})
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        fail(".".join(str(part) for part in first["loc"]), _describe(first))


def _path(path: str | Path | None) -> Path:
    return Path(path) if path is not None else tenants_file_path()


def load_tenants(path: str | Path | None = None) -> dict[str, TenantConfig]:
    """Read and validate every tenant; raise ``TenantConfigError`` with one clear line.

    For listing all tenants (CLI, schedules, sensors): one broken tenant fails the whole
    call, so it is reported. A run needs only its own tenant: ``load_tenant``.
    """
    path = _path(path)
    return {
        key: _validate_tenant(path.name, key, body) for key, body in _tenant_bodies(path).items()
    }


#: An unknown-tenant message lists at most this many known keys.
_KNOWN_SHOWN = 20


def load_tenant(key: str, path: str | Path | None = None) -> TenantConfig:
    """Validate only tenant ``key`` (the environment is read now, so a changed secret applies).

    Other tenants' entries are not validated: a mistake in tenant B does not stop a run of
    tenant A (``load_tenants`` still reports it). The file's top level must be valid.
    """
    path = _path(path)
    bodies = _tenant_bodies(path)
    if key not in bodies:
        known = sorted(_printable(k) for k in bodies)
        shown = ", ".join(known[:_KNOWN_SHOWN])
        if len(known) > _KNOWN_SHOWN:
            shown += f" … and {len(known) - _KNOWN_SHOWN} more"
        raise TenantConfigError(f"{path.name}: unknown tenant '{key}' (known: {shown})")
    return _validate_tenant(path.name, key, bodies[key])


class TenantsResource(dg.ConfigurableResource):
    """The tenants file as a Dagster resource: read on use, so edits apply to the next run.

    ``get`` validates only the requested tenant (a run of tenant A does not fail because
    tenant B's entry is invalid); ``load`` validates all of them. The parsed file is kept
    per process until the file changes.
    """

    tenants_file: str = Field(
        default=DEFAULT_TENANTS_FILE, description="Path of the tenants YAML file."
    )

    def load(self) -> dict[str, TenantConfig]:
        return load_tenants(self.tenants_file)

    def get(self, key: str) -> TenantConfig:
        return load_tenant(key, self.tenants_file)

    def tripletex_client(self, key: str, **overrides: Any) -> TripletexClient:
        return self.get(key).tripletex_client(**overrides)

    def svenn_client(self, key: str, **overrides: Any) -> SvennClient:
        return self.get(key).svenn_client(**overrides)
