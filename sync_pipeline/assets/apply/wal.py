"""The write-ahead log ``sync.operations`` (G5).

Every write's intent is committed before the HTTP call, and its outcome (with the
link change it implies, in the same transaction) after. An intent without outcome
from an earlier run that is over (no live tenant lease, G13) is a write whose fate is
unknown: the process died or the API never answered. ``recovery`` settles those before a new run writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from sync_pipeline.resources.state import columns, staged_rows

STATES = ("intent", "done", "failed", "skipped")


@dataclass
class Intent:
    seq: int
    entity: str
    target: str
    operation: str
    svenn_id: int | None
    tripletex_id: int | None
    key: str | None
    idempotency_key: str | None
    payload: Any


@dataclass
class Outcome:
    seq: int
    state: str  # 'done' | 'failed' | 'skipped'
    result_id: int | None = None
    error: dict[str, Any] | None = None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def record_intents(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, intents: list[Intent]
) -> None:
    """Commit the intents of one batch (one statement, the caller's transaction)."""
    if not intents:
        return
    rows = columns(
        intents,
        *("seq", "entity", "target", "operation", "svenn_id", "tripletex_id", "key"),
        idem="idempotency_key",
        payload=lambda i: _dumps(i.payload),
    )
    with staged_rows(conn, rows) as staged:
        conn.execute(
            "INSERT INTO sync.operations (tenant, run_id, seq, entity, target, operation, "
            "svenn_id, tripletex_id, key, idempotency_key, state, result_id, error, "
            "started_at, finished_at, payload) "
            "SELECT ?, ?, seq, entity, target, operation, svenn_id, tripletex_id, key, idem, "
            f"'intent', NULL, NULL, now(), NULL, CAST(payload AS JSON) FROM {staged}",
            [tenant, run_id],
        )


def record_outcomes(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, outcomes: list[Outcome]
) -> None:
    """Settle intents (or record rows that never got one, e.g. skipped) in one statement."""
    if not outcomes:
        return
    rows = columns(outcomes, "seq", "state", "result_id", error=lambda o: _dumps(o.error))
    with staged_rows(conn, rows) as staged:
        conn.execute(
            "UPDATE sync.operations AS o SET state = f.state, result_id = f.result_id, "
            f"error = CAST(f.error AS JSON), finished_at = now() FROM {staged} AS f "
            "WHERE o.tenant = ? AND o.run_id = ? AND o.seq = f.seq",
            [tenant, run_id],
        )


def record_without_intent(
    conn: duckdb.DuckDBPyConnection,
    tenant: str,
    run_id: str,
    intents: list[Intent],
    outcomes: list[Outcome],
) -> None:
    """Log rows decided without an API call (skipped, state-only) with their outcome."""
    record_intents(conn, tenant, run_id, intents)
    record_outcomes(conn, tenant, run_id, outcomes)


#: G13: intents of a run that still holds the tenant's live lease are that run's to settle.
_NOT_LIVE_RUN = (
    "run_id NOT IN (SELECT run_id FROM sync.leases WHERE tenant = ? "
    "AND released_at IS NULL AND expires_at > now())"
)


@dataclass
class UnknownCreate:
    run_id: str
    seq: int
    entity: str
    target: str
    svenn_id: int | None
    tripletex_id: int | None
    key: str | None
    started_at: datetime


def unknown_creates(
    conn: duckdb.DuckDBPyConnection, tenant: str, current_run_id: str
) -> list[UnknownCreate]:
    """Creates of earlier runs that were sent (or about to be) but never settled."""
    rows = conn.execute(
        "SELECT run_id, seq, entity, target, svenn_id, tripletex_id, key, started_at "
        "FROM sync.operations WHERE tenant = ? AND run_id <> ? AND operation = 'create' "
        f"AND state = 'intent' AND {_NOT_LIVE_RUN} ORDER BY started_at, seq",
        [tenant, current_run_id, tenant],
    ).fetchall()
    return [UnknownCreate(*row) for row in rows]


def settle_earlier(
    conn: duckdb.DuckDBPyConnection,
    tenant: str,
    run_id: str,
    seq: int,
    state: str,
    result_id: int | None,
    error: dict[str, Any],
) -> None:
    conn.execute(
        "UPDATE sync.operations SET state = ?, result_id = ?, error = CAST(? AS JSON), "
        "finished_at = now() WHERE tenant = ? AND run_id = ? AND seq = ? AND state = 'intent'",
        [state, result_id, _dumps(error), tenant, run_id, seq],
    )


def abandon_other_intents(conn: duckdb.DuckDBPyConnection, tenant: str, current_run_id: str) -> int:
    """Close the non-create intents of earlier runs: updates, numbers and deletes are
    re-derived from fresh snapshots by the next merge, so only their record is settled."""
    rows = conn.execute(
        "UPDATE sync.operations SET state = 'failed', finished_at = now(), error = "
        'CAST(\'{"recovery": "outcome unknown (run interrupted); re-planned from fresh '
        "snapshots\"}' AS JSON) WHERE tenant = ? AND run_id <> ? AND state = 'intent' "
        f"AND operation <> 'create' AND {_NOT_LIVE_RUN}",
        [tenant, current_run_id, tenant],
    ).fetchall()
    return int(rows[0][0]) if rows else 0
