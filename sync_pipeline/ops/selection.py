"""Which tenants a command applies to, from the tenants file it was given, and who acts.

The file is passed explicitly (``--tenants-file``; ``None`` means ``$SYNC_TENANTS_FILE`` or
``data/tenants.yaml``): the same path goes to the runs' ``TenantsResource``.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from sync_pipeline.ops import OperatorError
from sync_pipeline.tenants import TenantConfig, TenantConfigError, load_tenants


def tenants(tenants_file: str | Path | None) -> dict[str, TenantConfig]:
    """The tenants file, validated; a problem with it is one line for the operator."""
    try:
        return load_tenants(tenants_file)
    except TenantConfigError as exc:
        raise OperatorError(str(exc)) from None


def selected(configured: dict[str, TenantConfig], key: str | None) -> list[str]:
    """The tenants a command applies to: ``key`` (checked against the file) or all."""
    if key is None:
        return sorted(configured)
    if key not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise OperatorError(f"unknown tenant '{key}' (known: {known})")
    return [key]


def actor(by: str | None) -> str:
    """Who records a decision: ``--by``, else the login name."""
    if by:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        return "unknown"
