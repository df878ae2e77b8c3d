"""``sync-pipeline explain``: why one record is (not) synced, from the state the runs left.

Support's most frequent question is "my project is in Svenn but not in Tripletex — why?".
The answer is spread over ``sync.links``, ``sync.plan``, ``sync.operations``,
``sync.findings``, ``sync.errors``, ``sync.conflicts``, ``sync.eligibility_checks``,
``sync.matches`` and ``sync.extracts``; :func:`story` puts it together for one record.

Every query is about one record (its ids on both sides), never a loop over a table. The
caller opens the DuckDB file read-only and closes it as soon as :func:`story` returns, so a
running sync waits at most for these few queries (:func:`read_only`).

The JSON shape (``--format json``, documented in the README) is stable: keys are only added.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from sync_pipeline.model import CODES
from sync_pipeline.resources.backends import open_lake, store_kind

SIDES = ("svenn", "tripletex")
#: What an open error holds back, and the command that releases it (next-run forecast).
RELEASES = {
    "MASS_CREATE_HELD": "held by the mass-create guard (G12) until `sync-pipeline "
    "confirm-creates --tenant {tenant}`",
    "MASS_DELETE_HELD": "held by the mass-deletion guard (G7) until `sync-pipeline "
    "confirm-deletes --tenant {tenant}`",
    "LINK_DETACHED": "stays detached until `sync-pipeline relink --tenant {tenant} "
    "--entity {entity} --svenn-id {svenn_id}` (G13)",
    "API_UNAVAILABLE": "the next run looks the record up again and retries the write (G5)",
    "TENANT_BINDING_CHANGED": "every run is refused until `sync-pipeline rebind --tenant "
    "{tenant}` (G11)",
}
HELD_CODES = {"mass_create": "MASS_CREATE_HELD", "mass_delete": "MASS_DELETE_HELD"}


class ExplainError(Exception):
    """The database cannot be read (missing, locked for too long)."""


@contextmanager
def read_only(path: str, wait_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, retried while a sync holds the file (up to ``wait_s``), and
    closed as soon as the caller is done: explain must never keep a sync waiting. On a
    DuckLake (``SYNC_STORE=ducklake``) a read-only attach never blocks a writer."""
    if store_kind() == "ducklake":
        with open_lake(read_only=True) as conn:
            yield conn
        return
    if not Path(path).exists():
        raise ExplainError(f"{path}: no sync database yet (no run has happened)")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn = duckdb.connect(path, read_only=True)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise ExplainError(
                    f"{path}: the sync database is busy (a run is writing); try again shortly"
                ) from None
            time.sleep(0.1)
    try:
        yield conn
    finally:
        conn.close()


def explain_command(tenant: str, entity: str, svenn_id: Any, tripletex_id: Any) -> str:
    """The shell command that explains one record (for the error log's UI table)."""
    side, record_id = ("svenn", svenn_id) if svenn_id is not None else ("tripletex", tripletex_id)
    if record_id is None or entity not in ("project", "customer", "employee"):
        return ""
    return (
        f"sync-pipeline explain --tenant {shlex.quote(tenant)} --entity {entity} "
        f"--{side}-id {int(record_id)}"
    )


# -- queries ----------------------------------------------------------------------------------
def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Tables present (an older database lacks the newer ones; explain still answers)."""
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _plural(entity: str) -> str:
    return f"{entity}s"


def _identify(conn, tables: set[str], tenant: str, entity: str, query: dict) -> dict[str, set]:
    """Both sides' ids of the record asked about: through its links (any state) and, for
    ``--number``, the staged records with that key."""
    ids: dict[str, set] = {"svenn": set(), "tripletex": set()}
    if query.get("svenn_id") is not None:
        ids["svenn"].add(int(query["svenn_id"]))
    if query.get("tripletex_id") is not None:
        ids["tripletex"].add(int(query["tripletex_id"]))
    if query.get("number") is not None:
        for side in SIDES:
            table = f"staging.{side}_{_plural(entity)}"
            if table in tables:
                for (rid,) in conn.execute(
                    f"SELECT id FROM {table} WHERE tenant = ? AND number = ?",
                    [tenant, str(query["number"])],
                ).fetchall():
                    ids[side].add(rid)
        for s, t in conn.execute(
            "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = ? AND entity = ? "
            "AND key = ?",
            [tenant, entity, str(query["number"])],
        ).fetchall():
            ids["svenn"] |= {s} - {None}
            ids["tripletex"] |= {t} - {None}
    for s, t in conn.execute(
        "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = ? AND entity = ? "
        "AND (svenn_id IN (SELECT unnest(?)) OR tripletex_id IN (SELECT unnest(?)))",
        [tenant, entity, sorted(ids["svenn"]), sorted(ids["tripletex"])],
    ).fetchall():
        if s is not None:
            ids["svenn"].add(s)
        if t is not None:
            ids["tripletex"].add(t)
    return ids


#: One record's rows of a table: its Svenn or its Tripletex id.
_MINE = "tenant = ? AND entity = ? AND (svenn_id IN (SELECT unnest(?)) OR tripletex_id IN (SELECT unnest(?)))"


def story(conn: duckdb.DuckDBPyConnection, tenant: str, entity: str, **query: Any) -> dict:
    """Everything the sync knows about one record, newest first (the documented JSON shape).

    ``query``: ``svenn_id``, ``tripletex_id`` or ``number`` (the key: project/customer/
    employee number).
    """
    tables = _tables(conn)
    ids = _identify(conn, tables, tenant, entity, query)
    s_ids, t_ids = sorted(ids["svenn"]), sorted(ids["tripletex"])
    mine = [tenant, entity, s_ids, t_ids]

    records = []
    for side, side_ids in (("svenn", s_ids), ("tripletex", t_ids)):
        table = f"staging.{side}_{_plural(entity)}"
        if side_ids and table in tables:
            for row in _rows(
                conn,
                f"SELECT id, number, label, deleted, modified_at FROM {table} "
                "WHERE tenant = ? AND id IN (SELECT unnest(?)) ORDER BY id",
                [tenant, side_ids],
            ):
                records.append({"side": side, **row})

    links = _rows(
        conn,
        "SELECT svenn_id, tripletex_id, key, origin, state, base, linked_at, last_synced_at "
        f"FROM sync.links WHERE {_MINE} ORDER BY linked_at DESC",
        mine,
    )
    for link in links:
        link["base"] = _json(link["base"])
    detachments = (
        _rows(
            conn,
            "SELECT svenn_id, tripletex_id, rule_id, reason, run_id, detached_at "
            f"FROM sync.link_detachments WHERE {_MINE} ORDER BY detached_at DESC",
            mine,
        )
        if "sync.link_detachments" in tables
        else []
    )

    events: list[dict] = []

    def add(kind: str, at: Any, run_id: Any, **fields: Any) -> None:
        events.append({"at": at, "run_id": run_id, "kind": kind, **fields})

    for r in _rows(
        conn,
        "SELECT run_id, planned_at, target, operation, svenn_id, tripletex_id, rule_ids, "
        "reason, fields, payload, apply, held_reason FROM sync.plan "
        f"WHERE {_MINE} ORDER BY planned_at DESC, seq",
        mine,
    ):
        add(
            "planned",
            r["planned_at"],
            r["run_id"],
            target=r["target"],
            operation=r["operation"],
            svenn_id=r["svenn_id"],
            tripletex_id=r["tripletex_id"],
            rule_ids=list(r["rule_ids"] or []),
            reason=r["reason"],
            fields=list(r["fields"] or []),
            payload=_json(r["payload"]),
            apply=r["apply"],
            held_reason=r["held_reason"],
        )
    for r in _rows(
        conn,
        "SELECT run_id, started_at, finished_at, target, operation, svenn_id, tripletex_id, "
        f"state, result_id, error FROM sync.operations WHERE {_MINE} ORDER BY started_at DESC",
        mine,
    ):
        add(
            "operation",
            r["finished_at"] or r["started_at"],
            r["run_id"],
            target=r["target"],
            operation=r["operation"],
            svenn_id=r["svenn_id"],
            tripletex_id=r["tripletex_id"],
            outcome=r["state"],
            result_id=r["result_id"],
            api_answer=_json(r["error"]),
        )
    runs_at = {
        r["run_id"]: r["started_at"]
        for r in _rows(conn, "SELECT run_id, started_at FROM sync.runs WHERE tenant = ?", [tenant])
    }
    for r in _rows(
        conn,
        "SELECT run_id, side, svenn_id, tripletex_id, record_label, code, severity, rule_id, "
        f"message, details FROM sync.findings WHERE {_MINE}",
        mine,
    ):
        add(
            "finding",
            runs_at.get(r["run_id"]),
            r["run_id"],
            code=r["code"],
            severity=r["severity"],
            rule_id=r["rule_id"],
            message=r["message"],
            svenn_id=r["svenn_id"],
            tripletex_id=r["tripletex_id"],
            details=_json(r["details"]),
        )
    for r in _rows(
        conn,
        "SELECT run_id, detected_at, field, base_value, svenn_value, tripletex_value, winner, "
        "svenn_modified_at, tripletex_modified_at, svenn_id, tripletex_id FROM sync.conflicts "
        f"WHERE {_MINE} ORDER BY detected_at DESC, field",
        mine,
    ):
        add(
            "conflict",
            r["detected_at"],
            r["run_id"],
            rule_id="G2",
            field=r["field"],
            base_value=_json(r["base_value"]),
            svenn_value=_json(r["svenn_value"]),
            tripletex_value=_json(r["tripletex_value"]),
            winner=r["winner"],
            svenn_modified_at=r["svenn_modified_at"],
            tripletex_modified_at=r["tripletex_modified_at"],
        )
    if "sync.eligibility_checks" in tables:
        for r in _rows(
            conn,
            "SELECT run_id, checked_at, side, id, rule_id, code, effect FROM "
            "sync.eligibility_checks WHERE tenant = ? AND entity = ? AND "
            "((side = 'svenn' AND id IN (SELECT unnest(?))) OR "
            "(side = 'tripletex' AND id IN (SELECT unnest(?)))) ORDER BY checked_at DESC",
            mine,
        ):
            code = CODES.get(r["code"])
            add(
                "eligibility_check",
                r["checked_at"],
                r["run_id"],
                side=r["side"],
                id=r["id"],
                rule_id=r["rule_id"],
                code=r["code"],
                effect=r["effect"],
                message=code.message if code else None,
            )
    if "sync.matches" in tables:
        for r in _rows(
            conn,
            "SELECT run_id, matched_at, svenn_id, tripletex_id, key, via, kind AS match_kind, "
            "origin "
            f"FROM sync.matches WHERE {_MINE} AND kind <> 'linked' ORDER BY matched_at DESC",
            mine,
        ):
            add(
                "match",
                r["matched_at"],
                r["run_id"],
                rule_id="G3",
                **_drop(r, "run_id", "matched_at"),
            )
    for d in detachments:
        add(
            "detached",
            d["detached_at"],
            d["run_id"],
            rule_id=d["rule_id"],
            reason=d["reason"],
            svenn_id=d["svenn_id"],
            tripletex_id=d["tripletex_id"],
        )

    errors = _rows(
        conn,
        "SELECT code, severity, entity, svenn_id, tripletex_id, record_label, message, details, "
        "first_seen_at, last_seen_at, resolved_at, run_id FROM sync.errors "
        f"WHERE {_MINE} ORDER BY resolved_at IS NULL DESC, last_seen_at DESC",
        mine,
    )
    planned = [e for e in events if e["kind"] == "planned"]  # newest plan first
    held = {e["held_reason"] for e in planned if e["run_id"] == planned[0]["run_id"]} - {None}
    if held:  # the guards' errors name the entity, not each record they hold
        errors += _rows(
            conn,
            "SELECT code, severity, entity, svenn_id, tripletex_id, record_label, message, "
            "details, first_seen_at, last_seen_at, resolved_at, run_id FROM sync.errors "
            "WHERE tenant = ? AND entity = ? AND svenn_id IS NULL AND tripletex_id IS NULL "
            "AND code IN (SELECT unnest(?)) AND resolved_at IS NULL",
            [tenant, entity, sorted(HELD_CODES[h] for h in held if h in HELD_CODES)],
        )
    for e in errors:
        e["details"] = _json(e["details"])
        known = CODES.get(e["code"])
        rule = e["details"].get("rule_id") if isinstance(e["details"], dict) else None
        e["rule_id"] = rule or (known.rule_id if known else None)
        add(
            "error_resolved" if e["resolved_at"] else "error_open",
            e["resolved_at"] or e["last_seen_at"],
            e["run_id"],
            code=e["code"],
            severity=e["severity"],
            rule_id=e["rule_id"],
            message=e["message"],
        )

    seen = bool(records or links or events)
    runs = sorted(
        {e["run_id"] for e in events if e["run_id"]},
        key=lambda r: _sort(runs_at.get(r)),
        reverse=True,
    )
    events.sort(key=lambda e: _sort(e["at"]), reverse=True)
    open_errors = [e for e in errors if e["resolved_at"] is None]
    return {
        "tenant": tenant,
        "entity": entity,
        "query": {k: query.get(k) for k in ("svenn_id", "tripletex_id", "number")},
        "seen": seen,
        "svenn_ids": s_ids,
        "tripletex_ids": t_ids,
        "records": records,
        "links": links,
        "detachments": detachments,
        "open_errors": open_errors,
        "runs": [{"run_id": r, "started_at": runs_at.get(r)} for r in runs],
        "events": events,
        "next_run": _next_run(tenant, entity, links, open_errors, events, records),
        "never_seen": None if seen else _never_seen(conn, tables, tenant, entity, query),
    }


def _drop(row: dict, *keys: str) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def _sort(at: Any) -> float:
    return at.timestamp() if isinstance(at, datetime) else float("-inf")


def _next_run(tenant, entity, links, open_errors, events, records) -> list[str]:
    """What the next run will do with the record, from its open errors and link."""
    out = []
    for e in open_errors:
        template = RELEASES.get(e["code"])
        if template:
            sid = e["svenn_id"] if e["svenn_id"] is not None else "ID"
            out.append(
                f"{e['code']} ({e['rule_id']}): "
                + template.format(tenant=tenant, entity=entity, svenn_id=sid)
            )
        elif e["severity"] == "error":
            out.append(
                f"{e['code']} ({e['rule_id']}): not synced until this is fixed at the source: "
                f"{e['message']}"
            )
    if not out:
        if any(link["state"] == "active" for link in links):
            out.append("linked and in sync: the next run writes only what changes (G6)")
        elif records:
            out.append("the next run plans the record again from its current values")
    return out


def _never_seen(conn, tables: set[str], tenant: str, entity: str, query: dict) -> dict:
    """Why a record the sync never saw is missing: never extracted, extract incomplete, in
    raw but not staged, or absent from every complete listing."""
    side = "svenn" if query.get("svenn_id") is not None else "tripletex"
    sides = [side] if query.get("number") is None else list(SIDES)
    out: dict[str, Any] = {"extracts": []}
    reasons = []
    for s in sides:
        last = _rows(
            conn,
            "SELECT system, run_id, mode, complete, row_count, finished_at, error "
            "FROM sync.extracts WHERE tenant = ? AND system = ? AND entity = ? "
            "ORDER BY started_at DESC LIMIT 1",
            [tenant, s, entity],
        )
        out["extracts"] += last
        raw = f"raw.{s}_{_plural(entity)}"
        rid = query.get(f"{s}_id")
        in_raw = (
            rid is not None
            and raw in tables
            and conn.execute(
                f"SELECT count(*) FROM {raw} WHERE tenant = ? AND id = ?", [tenant, rid]
            ).fetchone()[0]
            > 0
        )
        if not last:
            reasons.append(f"{s}: no {entity} extract has run for this tenant yet")
        elif not last[0]["complete"]:
            reasons.append(
                f"{s}: the last {entity} extract (run {last[0]['run_id']}) was incomplete "
                f"({last[0]['error']}); nothing from it was staged (G7)"
            )
        elif in_raw:
            reasons.append(
                f"{s}: the record is in raw.{s}_{_plural(entity)} but not in staging "
                "(filtered when staged: see SYNC-RULES §0)"
            )
        else:
            reasons.append(
                f"{s}: not in the last complete {entity} listing (run {last[0]['run_id']}): "
                "the id does not exist there, was deleted, or the listing filters it"
            )
    out["reason"] = "; ".join(reasons)
    return out


# -- text -------------------------------------------------------------------------------------
def _at(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value or "")


def to_text(s: dict) -> str:
    """The story for a terminal: who the record is, its link, what next, then events."""
    q = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["query"].items() if v is not None)
    lines = [f"tenant '{s['tenant']}': {s['entity']} ({q})"]
    if not s["seen"]:
        lines.append("never seen by the sync: " + s["never_seen"]["reason"])
        return "\n".join(lines)
    for r in s["records"]:
        gone = " (deleted)" if r["deleted"] else ""
        lines.append(f"  {r['side']} {r['id']}: {r['label']}{gone}")
    for link in s["links"] or [None]:
        if link is None:
            lines.append("link: none (the record is not linked)")
        else:
            lines.append(
                f"link: Svenn {link['svenn_id']} ⇄ Tripletex {link['tripletex_id']} "
                f"{link['state']}, origin {link['origin']}, since {_at(link['linked_at'])}, "
                f"last synced {_at(link['last_synced_at'])}, base {json.dumps(link['base'], ensure_ascii=False)}"
            )
    for d in s["detachments"]:
        lines.append(
            f"  detached {_at(d['detached_at'])} by {d['rule_id']}: {d['reason']} (run {d['run_id']})"
        )
    lines.append("next run:")
    lines += [f"  - {n}" for n in s["next_run"]]
    lines.append("history (newest first):")
    for e in s["events"]:
        lines.append(f"  {_at(e['at'])}  run {e['run_id']}  {_event_text(e)}")
    return "\n".join(lines)


def _event_text(e: dict) -> str:
    kind = e["kind"]
    if kind == "planned":
        held = f", held ({e['held_reason']})" if e["held_reason"] else ""
        applied = "" if e["apply"] else ", not applied"
        return (
            f"planned {e['operation']} in {e['target']} [{','.join(e['rule_ids'])}] "
            f"{e['reason'] or ''}{held}{applied}".rstrip()
        )
    if kind == "operation":
        answer = f": {json.dumps(e['api_answer'], ensure_ascii=False)}" if e["api_answer"] else ""
        return f"{e['operation']} in {e['target']} → {e['outcome']}{answer}"
    if kind == "conflict":
        return (
            f"conflict [G2] on {e['field']}: Svenn {json.dumps(e['svenn_value'], ensure_ascii=False)} vs "
            f"Tripletex {json.dumps(e['tripletex_value'], ensure_ascii=False)} → {e['winner']} won"
        )
    if kind == "match":
        return f"matched [G3] by {e['via']} ({e['match_kind']})"
    if kind == "detached":
        return f"link detached [{e['rule_id']}]: {e['reason']}"
    if kind == "eligibility_check":
        return f"{e['side']} failed {e['code']} [{e['rule_id']}] ({e['effect']}): {e['message']}"
    state = {"finding": "finding", "error_open": "open error", "error_resolved": "resolved"}[kind]
    return f"{state} {e['code']} [{e['rule_id']}] {e['severity']}: {e['message']}"


def explain_commands_sql() -> str:
    """Issue 16: each open record error of a tenant with the command that explains it, errors
    first (the error-log asset shows them in the UI; tenant keys are ``[a-z0-9_-]+``, so the
    command needs no quoting). Tenant-level errors (no record ids) have no command."""
    return """
        SELECT code, severity, entity, record_label, message,
               'sync-pipeline explain --tenant ' || tenant || ' --entity ' || entity
               || CASE WHEN svenn_id IS NOT NULL THEN ' --svenn-id ' || svenn_id
                       ELSE ' --tripletex-id ' || tripletex_id END AS command
        FROM sync.errors
        WHERE tenant = ? AND resolved_at IS NULL
          AND entity IN ('project', 'customer', 'employee')
          AND (svenn_id IS NOT NULL OR tripletex_id IS NOT NULL)
        ORDER BY CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                 code, entity, record_label
        LIMIT ?"""
