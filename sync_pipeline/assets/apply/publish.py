"""Publishing the open errors to Svenn's integration error log (G10), only when they changed
(G6: an unchanged list is not published again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import duckdb

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.model import PLURAL


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def svenn_record_id(svenn_id: int | None, tripletex_id: int | None) -> int | str | None:
    """The error log's ``record_id`` (an integer or a string, svenn-api.md): the Svenn id as
    an integer, Svenn's own; an id only Tripletex has is a string naming its system
    (``"tripletex:123"``), so it is never taken for a Svenn id."""
    if svenn_id is not None:
        return svenn_id
    return f"tripletex:{tripletex_id}" if tripletex_id is not None else None


def svenn_record_label(
    label: str | None, svenn_id: int | None, tripletex_id: int | None
) -> str | None:
    """The label users see, with each known id and the system it belongs to (G10)."""
    ids = ", ".join(
        f"{system}-ID {value}"
        for system, value in (("Svenn", svenn_id), ("Tripletex", tripletex_id))
        if value is not None
    )
    if not ids:
        return label
    return f"{label} ({ids})" if label else ids


def open_errors_for_svenn(conn: duckdb.DuckDBPyConnection, tenant: str) -> list[dict[str, Any]]:
    """The open errors as Svenn's integration error log takes them (svenn-api.md): its
    fields only; which system an id belongs to is in ``record_id`` and ``record_label``."""
    rows = conn.execute(
        "SELECT code, severity, message, entity, svenn_id, tripletex_id, record_label, "
        "first_seen_at, last_seen_at FROM sync.errors WHERE tenant = ? AND resolved_at IS NULL "
        "ORDER BY code, entity, record_label, svenn_id, tripletex_id",
        [tenant],
    ).fetchall()
    return [
        {
            "code": code,
            "severity": severity,
            "message": message,
            "entity": PLURAL.get(entity, entity) if entity else None,  # type: ignore[call-overload]
            "record_id": svenn_record_id(svenn_id, tripletex_id),
            "record_label": svenn_record_label(label, svenn_id, tripletex_id),
            "first_seen_at": _rfc3339(first),
            "last_seen_at": _rfc3339(last),
        }
        for code, severity, message, entity, svenn_id, tripletex_id, label, first, last in rows
    ]


def errors_hash(errors: list[dict[str, Any]]) -> str:
    """What users would see change; ``last_seen_at`` alone moving is not a change (G6)."""
    stable = [{k: v for k, v in e.items() if k != "last_seen_at"} for e in errors]
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def last_published_hash(conn: duckdb.DuckDBPyConnection, tenant: str) -> str | None:
    row = first(
        conn.execute(
            "SELECT errors_hash FROM sync.error_publications WHERE tenant = ? "
            "ORDER BY published_at DESC LIMIT 1",
            [tenant],
        )
    )
    return row[0] if row else None


def record_publication(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, digest: str, count: int
) -> None:
    conn.execute(
        "INSERT INTO sync.error_publications (tenant, run_id, errors_hash, error_count, "
        "published_at) VALUES (?, ?, ?, ?, now())",
        [tenant, run_id, digest, count],
    )


def publish_open_errors(
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    tenant: str,
    run_id: str,
    svenn: Any,
) -> tuple[bool, list[dict[str, Any]]]:
    """PUT the open errors to Svenn when they changed since the last publication (G10, G6).

    Returns (published, open errors). An ``ApiError`` propagates; nothing is recorded
    then, so the next run tries again.
    """
    with connect() as conn:
        errors = open_errors_for_svenn(conn, tenant)
        digest = errors_hash(errors)
        if digest == last_published_hash(conn, tenant):
            return False, errors
    svenn.put_errors(errors)
    with connect() as conn:
        record_publication(conn, tenant, run_id, digest, len(errors))
    return True, errors
