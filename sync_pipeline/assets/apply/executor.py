"""Carry out one run's plan against Svenn and Tripletex (G4, G5, G6, G8, P5, E2, P9, C7).

Rows run in dependency order (the plan's entity order: employees, customers,
projects, then participants), and within an entity: key matches (``link``) first,
then Tripletex number assignments, creates and updates through the batch ``/list``
endpoints, then Svenn writes through its bulk endpoint (up to 100 operations a request),
then detaches. Every write goes through the
write-ahead log (``wal``); the link change an outcome implies is committed in the
same transaction as that outcome. A batch Tripletex rejects (4xx) is bisected so
the good records still land. A Tripletex create refused outright (429, 503) is looked
up by key and sent again; one whose answer was lost or is another 5xx may have been
committed (perhaps later still), so it is never sent again in the run: its intent stays
open for the next run's recovery, which looks the record up by key first (G4, G5).
A Svenn bulk carries every create's idempotency key, so a bulk whose answer was lost is
re-sent (or recovered next run) and replayed by Svenn, never duplicated; each of its
operations is settled as the single call would have been.

A link is detached only as the outcome of what proves the deletion (P8, P9, C6, C7, E4,
G13): a Svenn complete/delete that Svenn accepted, after a GET by id proved the Tripletex
record gone (404); a detach row whose payload asks ``verify`` after that same GET; or a
plain detach row (a Svenn tombstone). A skipped, refused or failed write leaves the link as
it was for the next run; every detach logs LINK_DETACHED with the rule and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from sync_pipeline.assets.apply import wal
from sync_pipeline.assets.apply.error_log import Finding, insert_findings
from sync_pipeline.assets.apply.links import (
    LinkIndex,
    LinkWrite,
    UnresolvedRefError,
    apply_to_index,
    resolve_refs,
    write_links,
)
from sync_pipeline.model import PLURAL
from sync_pipeline.resources.http import ApiError, ApiUnavailableError
from sync_pipeline.resources.svenn import BULK_MAX_OPERATIONS, create_op, delete_op, update_op

logger = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

TRIPLETEX_PATH = {"project": "/project", "customer": "/customer", "employee": "/employee"}
#: The key field as each API names it (G4: creates always send it).
KEY_FIELD = {
    "tripletex": {"project": "number", "customer": "customerNumber", "employee": "employeeNumber"},
    "svenn": {
        "project": "display_id",
        "customer": "customer_number",
        "employee": "employee_number",
    },
}
#: The Tripletex list filter that finds a record by its key.
TRIPLETEX_KEY_FILTER = {
    "project": "number",
    "customer": "customerAccountNumber",
    "employee": "employeeNumber",
}
#: Entities with a batch update endpoint (there is no ``PUT /employee/list``).
TRIPLETEX_PUT_LIST = frozenset({"project", "customer"})
#: The operations the executor carries out, per target (anything else stops the run).
OPERATIONS = {
    "state": ("link", "update", "detach"),
    "tripletex": ("set_number", "create", "update"),
    "svenn": ("create", "update", "complete", "delete"),
}
#: How often one run sends a create that failed transiently: a Tripletex create refused
#: outright (``REFUSED_STATUSES``), a Svenn create under its Idempotency-Key.
UNKNOWN_CREATE_ATTEMPTS = 3
#: Answers that say the request was not carried out: 429 (rate limited) and 503 (RFC 9110:
#: "unable to handle the request"). Any other transient failure of a create — a read
#: timeout, a dropped connection, 500/502/504 — may have been committed (G5).
REFUSED_STATUSES = frozenset({429, 503})
#: After this many chunks in a row found an API unavailable, the run stops calling it.
OUTAGE_AFTER_CHUNKS = 2


class UnsafeWriteError(RuntimeError):
    """The plan asks for a write the sync must never make; a bug upstream, so the run stops."""


@dataclass
class PlanRow:
    seq: int
    entity: str
    target: str
    operation: str
    svenn_id: int | None
    tripletex_id: int | None
    key: str | None
    label: str | None
    payload: Any
    fields: list[str] | None
    rule_ids: list[str] | None
    expected_version: int | None
    base_after: dict[str, Any] | None
    reason: str | None = None


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def load_plan(conn: duckdb.DuckDBPyConnection, tenant: str, run_ids: list[str]) -> list[PlanRow]:
    """The rows to apply of the first of ``run_ids`` that has a plan, in ``seq`` order."""
    for run_id in run_ids:
        rows = conn.execute(
            "SELECT seq, entity, target, operation, svenn_id, tripletex_id, key, label, "
            "payload, fields, rule_ids, expected_version, base_after, reason FROM sync.plan "
            "WHERE tenant = ? AND run_id = ? AND apply ORDER BY seq",
            [tenant, run_id],
        ).fetchall()
        if rows:
            return [
                PlanRow(
                    *r[:8],
                    payload=_loads(r[8]),
                    fields=list(r[9]) if r[9] is not None else None,
                    rule_ids=list(r[10]) if r[10] is not None else None,
                    expected_version=r[11],
                    base_after=_loads(r[12]),
                    reason=r[13],
                )
                for r in rows
            ]
    return []


def guard(row: PlanRow, payload: Any) -> None:
    """The writes the sync never makes, whatever the plan says (P4, C3, G-rules)."""
    if row.target == "tripletex" and row.operation == "delete":
        raise UnsafeWriteError(f"plan row {row.seq}: the sync never deletes in Tripletex")
    if row.target == "tripletex" and isinstance(payload, dict):
        if "isInternal" in payload:
            raise UnsafeWriteError(f"plan row {row.seq}: the sync never writes isInternal (P4)")
        if row.entity == "customer" and payload.get("isInactive") is True:
            raise UnsafeWriteError(
                f"plan row {row.seq}: the sync never sets a Tripletex customer inactive (C3)"
            )


def idempotency_key(tenant: str, row: PlanRow, payload: Any) -> str:
    """Stable across runs for the same source record and body (G4/G5).

    Svenn replays the first answer for a repeated key but refuses a reused key with
    another body, so the body's digest is part of it: a corrected record gets a fresh key.
    """
    source = f"tripletex:{row.tripletex_id}" if row.target == "svenn" else f"svenn:{row.svenn_id}"
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    return f"sync:{tenant}:{row.entity}:{source}:{digest}"


@dataclass
class Result:
    """What happened to one row; ``link`` is committed with the WAL outcome."""

    row: PlanRow
    state: str  # 'done' | 'failed' | 'skipped' | 'unknown'
    result_id: int | None = None
    version: int | None = None
    error: dict[str, Any] | None = None
    finding: Finding | None = None
    links: list[LinkWrite] = field(default_factory=list)


@dataclass
class ApplyReport:
    operations: Counter = field(default_factory=Counter)  # (entity, operation) -> rows
    states: Counter = field(default_factory=Counter)  # state -> rows
    by_entity_state: Counter = field(default_factory=Counter)  # (entity, op, state) -> rows
    api_writes: Counter = field(default_factory=Counter)  # state -> rows sent to an API
    findings: list[Finding] = field(default_factory=list)
    recovered: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def successes(self) -> int:
        return self.states["done"]

    @property
    def failures(self) -> int:
        return self.states["failed"] + self.states["unknown"]

    @property
    def unavailable(self) -> int:
        return sum(1 for f in self.findings if f.code == "API_UNAVAILABLE")


def _api_message(err: ApiError) -> str:
    parts = [err.message.strip()] if err.message and err.message.strip() else []
    for m in err.validation_messages:
        text = f"{m['field']}: {m['message']}" if m.get("field") else str(m.get("message") or "")
        if text:
            parts.append(text)
    return "; ".join(parts) or f"HTTP {err.status}"


def _error_details(err: ApiError) -> dict[str, Any]:
    return {
        "system": err.system,
        "status": err.status,
        "code": err.code,
        "message": err.message,
        "validation_messages": err.validation_messages,
        "request_id": err.request_id,
    }


def _is_transient(err: ApiError) -> bool:
    return isinstance(err, ApiUnavailableError) or err.is_transient


def _may_have_landed(err: ApiError) -> bool:
    """A transient failure after which a non-idempotent create may exist (G5)."""
    return _is_transient(err) and err.status not in REFUSED_STATUSES


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _waves(items: list[tuple[PlanRow, Any, str | None]]) -> list[list]:
    """Split rows so each record appears once per wave, keeping plan order within a record."""
    waves: list[list] = []
    seen: Counter = Counter()
    for item in items:
        row = item[0]
        record = (row.entity, row.svenn_id) if row.svenn_id is not None else (row.seq,)
        n = seen[record]
        seen[record] += 1
        if n == len(waves):
            waves.append([])
        waves[n].append(item)
    return waves


class PlanExecutor:
    """Applies plan rows for one tenant and run; see the module docstring for the order."""

    def __init__(
        self,
        *,
        tenant: str,
        run_id: str,
        connect: Connect,
        tripletex: Any,
        svenn: Any,
        batch_size: int = 100,
        workers: int = 4,
        retry_wait_seconds: float = 0.5,
        log: logging.Logger | Any = logger,
    ) -> None:
        self.tenant = tenant
        self.run_id = run_id
        self.connect = connect
        self.tripletex = tripletex
        self.svenn = svenn
        self.batch_size = batch_size
        self.workers = workers
        self.retry_wait_seconds = retry_wait_seconds
        self.log = log
        self.report = ApplyReport()
        self.index = LinkIndex()
        self._tx_version: dict[tuple[str, int], int] = {}
        self._sv_version: dict[tuple[str, int], int] = {}
        self._failed_numbers: list[PlanRow] = []
        self._outage: dict[str, int] = {}

    # -- entry point ----------------------------------------------------------------------
    def run(self, rows: list[PlanRow]) -> ApplyReport:
        started = time.monotonic()
        tx0, sv0 = self.tripletex.requests_made, self.svenn.requests_made
        for row in rows:  # fail before any write, not halfway through the plan
            guard(row, row.payload)
            if row.operation not in OPERATIONS.get(row.target, ()):
                raise UnsafeWriteError(
                    f"plan row {row.seq}: unknown operation {row.target}/{row.operation}"
                )
        with self.connect() as conn:
            self.index = LinkIndex.load(conn, self.tenant)
        phases: dict[str, list[PlanRow]] = {}
        for row in rows:
            phases.setdefault(row.entity, []).append(row)
        for entity, phase_rows in phases.items():
            self._run_phase(entity, phase_rows)
        self.report.requests = {
            "tripletex": self.tripletex.requests_made - tx0,
            "svenn": self.svenn.requests_made - sv0,
        }
        self.report.duration_s = time.monotonic() - started
        return self.report

    def _run_phase(self, entity: str, rows: list[PlanRow]) -> None:
        def pick(target: str, *ops: str) -> list[PlanRow]:
            return [r for r in rows if r.target == target and r.operation in ops]

        self._links(pick("state", "link"))
        self._settle_bases(pick("state", "update"))
        self._tripletex_writes(entity, pick("tripletex", "set_number"), "update")
        self._tripletex_writes(entity, pick("tripletex", "create"), "create")
        self._tripletex_writes(entity, pick("tripletex", "update"), "update")
        self._svenn_writes(pick("svenn", "create", "update", "complete", "delete"))
        self._detaches(pick("state", "detach"))
        self._finalize_bases()

    # -- bookkeeping ----------------------------------------------------------------------
    def _intents(self, items: list[tuple[PlanRow, Any, str | None]]) -> None:
        intents = [
            wal.Intent(
                r.seq, r.entity, r.target, r.operation, r.svenn_id, r.tripletex_id, r.key, k, p
            )
            for r, p, k in items
        ]
        with self.connect() as conn:
            wal.record_intents(conn, self.tenant, self.run_id, intents)

    def _settle(self, results: list[Result], *, with_intent: bool = False) -> None:
        """Commit outcomes, their link changes and findings in one transaction."""
        if not results:
            return
        link_writes = [w for r in results if r.state == "done" for w in r.links]
        findings = [r.finding for r in results if r.finding is not None]
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                refused = write_links(conn, self.tenant, link_writes)
                if refused:
                    findings += self._refuse_links(results, refused)
                    link_writes = [w for w in link_writes if all(w is not x for x in refused)]
                settled = [r for r in results if r.state != "unknown"]
                outcomes = [wal.Outcome(r.row.seq, r.state, r.result_id, r.error) for r in settled]
                if with_intent:
                    intents = [
                        wal.Intent(
                            r.row.seq,
                            r.row.entity,
                            r.row.target,
                            r.row.operation,
                            r.row.svenn_id,
                            r.row.tripletex_id,
                            r.row.key,
                            None,
                            None,
                        )
                        for r in results
                    ]
                    wal.record_intents(conn, self.tenant, self.run_id, intents)
                wal.record_outcomes(conn, self.tenant, self.run_id, outcomes)
                insert_findings(conn, findings)
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        apply_to_index(self.index, link_writes)
        for r in results:
            self.report.operations[(r.row.entity, r.row.operation)] += 1
            self.report.states[r.state] += 1
            self.report.by_entity_state[(r.row.entity, r.row.operation, r.state)] += 1
            if r.row.target != "state":
                self.report.api_writes[r.state] += 1
            if r.state in ("failed", "unknown") and r.row.operation == "set_number":
                self._failed_numbers.append(r.row)
        self.report.findings.extend(findings)

    def _refuse_links(self, results: list[Result], refused: list[LinkWrite]) -> list[Finding]:
        """G13: a result whose new link the store refused (an id is actively linked
        already) is recorded as skipped with LINK_REFUSED, never silently dropped."""
        findings = []
        for r in results:
            if r.state == "done" and any(w is x for w in r.links for x in refused):
                r.state = "skipped"
                r.error = {
                    **(r.error or {}),
                    "reason": "link refused: an id already has an active link (G13)",
                }
                findings.append(self._finding(r.row, "LINK_REFUSED", result_id=r.result_id))
        return findings

    def _finding(
        self, row: PlanRow, code: str, *, err: ApiError | None = None, **details: Any
    ) -> Finding:
        from sync_pipeline.model import CODES

        spec = CODES[code]
        message = spec.message
        if "{api_message}" in message:
            message = message.format(api_message=_api_message(err) if err else "ukjent feil")
        info: dict[str, Any] = {
            "rule_id": spec.rule_id,
            "operation": row.operation,
            "target": row.target,
            "plan_seq": row.seq,
            **(_error_details(err) if err else {}),
            **details,
        }
        return Finding(
            tenant=self.tenant,
            run_id=self.run_id,
            entity=row.entity,
            side=row.target if row.target in ("svenn", "tripletex") else None,
            svenn_id=row.svenn_id,
            tripletex_id=row.tripletex_id,
            record_label=row.label,
            code=code,
            severity=spec.severity,
            rule_id=spec.rule_id,
            message=message,
            details=info,
        )

    def _failure(self, row: PlanRow, err: ApiError) -> Result:
        """Classify an API refusal: concurrent edit (G8), outage (G5) or rejection (G10)."""
        if _is_transient(err):
            code = "API_UNAVAILABLE"
        elif err.status == 412 or (err.status == 409 and row.operation != "create"):
            code = "CONCURRENT_EDIT"
        else:
            code = "API_REJECTED"
        return Result(
            row, "failed", error=_error_details(err), finding=self._finding(row, code, err=err)
        )

    def _prepare(self, row: PlanRow, want: str, wrap: bool) -> tuple[Any, Result | None]:
        """The body with ``$ref``s resolved, or a failed result when a reference is missing."""
        try:
            return resolve_refs(row.payload, self.index, want, wrap), None  # type: ignore[arg-type]
        except UnresolvedRefError as exc:
            finding = self._finding(row, "DEPENDENCY_NOT_SYNCED", reference=exc.spec)
            return None, Result(row, "failed", error={"unresolved_ref": exc.spec}, finding=finding)

    def _base_after(self, row: PlanRow) -> dict[str, Any] | None:
        if row.base_after is None:
            return None
        try:
            return resolve_refs(row.base_after, self.index, "tripletex", False)
        except UnresolvedRefError:
            return None

    # -- state operations -----------------------------------------------------------------
    def _links(self, rows: list[PlanRow]) -> None:
        """Key matches (G3) become links at once, with the base the rules computed.

        That base holds each side's values *before* this run's writes, and each update
        merges the fields it wrote when it succeeds. So a write that fails or is cut
        off by a crash leaves the stale side looking unchanged, never edited (G5, G6).
        """
        results = []
        for row in rows:
            have_t = self.index.tripletex_of(row.entity, row.svenn_id) if row.svenn_id else None
            have_s = self.index.svenn_of(row.entity, row.tripletex_id) if row.tripletex_id else None
            base = self._base_after(row)
            if have_t == row.tripletex_id and have_s == row.svenn_id and have_t is not None:
                # linked by recovery already: the fields it knows no better than NULL
                link = LinkWrite(
                    "underlay_base", row.entity, row.svenn_id, row.tripletex_id, base=base
                )
                results.append(Result(row, "done", result_id=row.tripletex_id, links=[link]))
            elif have_t is not None or have_s is not None:
                results.append(
                    Result(row, "skipped", error={"reason": "a side is already linked elsewhere"})
                )
            else:
                link = LinkWrite(
                    "insert",
                    row.entity,
                    row.svenn_id,
                    row.tripletex_id,
                    key=row.key,
                    origin="matched",
                    base=base,
                )
                results.append(Result(row, "done", result_id=row.tripletex_id, links=[link]))
        for chunk in _chunks(results, 1000):
            self._settle(chunk, with_intent=True)

    def _detaches(self, rows: list[PlanRow]) -> None:
        """Detach rows: a Svenn tombstone detaches at once; a deletion derived from a Tripletex
        listing (payload ``verify``) only once a GET by id answered 404 (G7, E4, P9)."""
        plain = [r for r in rows if not self._verifies(r)]
        verified = [r for r in rows if self._verifies(r)]
        results = [
            Result(r, "done", links=[self._detach(r)], finding=self._detached(r)) for r in plain
        ]
        for chunk in _chunks(results, 1000):
            self._settle(chunk, with_intent=True)
        for chunk in _chunks(verified, self.batch_size):
            if self._is_down("tripletex"):
                self._settle(
                    self._not_attempted("tripletex", [(r,) for r in chunk]), with_intent=True
                )
                continue
            results = self._parallel(chunk, self._verified_detach)
            self._observe("tripletex", results)
            self._settle(results, with_intent=True)

    @staticmethod
    def _verifies(row: PlanRow) -> bool:
        return isinstance(row.payload, dict) and row.payload.get("verify") == "tripletex_gone"

    def _verified_detach(self, row: PlanRow) -> Result:
        try:  # the client already retries 429/5xx with backoff
            still_there = self._still_in_tripletex(row)
        except ApiError as err:
            return self._failure(row, err)
        if still_there:
            return self._not_confirmed(row)
        return Result(row, "done", links=[self._detach(row)], finding=self._detached(row, True))

    def _detach(self, row: PlanRow) -> LinkWrite:
        """The link change of a proven deletion, with the rule that detached it (G13)."""
        return LinkWrite(
            "detach",
            row.entity,
            row.svenn_id,
            row.tripletex_id,
            rule_id=self._detaching_rule(row),
            reason=row.reason,
            run_id=self.run_id,
        )

    @staticmethod
    def _detaching_rule(row: PlanRow) -> str | None:
        return (row.rule_ids or [None])[0]

    def _detached(self, row: PlanRow, verified: bool = False) -> Finding:
        """G13: a detached link is always logged, with the rule that detached it and why."""
        extra = {"verified_by": "GET by id answered 404"} if verified else {}
        return self._finding(
            row,
            "LINK_DETACHED",
            rule_id=self._detaching_rule(row),
            reason=row.reason,
            **extra,
        )

    def _not_confirmed(self, row: PlanRow) -> Result:
        """The record missed from the listing still exists: nothing is deleted or detached."""
        return Result(
            row,
            "skipped",
            error={"reason": "still in Tripletex; left for the next run"},
            finding=self._finding(
                row, "DELETION_NOT_CONFIRMED", deletion_rule=self._detaching_rule(row)
            ),
        )

    def _settle_bases(self, rows: list[PlanRow]) -> None:
        """Fields both sides changed alike (target ``state``, ``update``): the base follows."""
        results = []
        for row in rows:
            base = self._base_after(row) or {}
            svenn_id, tripletex_id = self._pair_ids(row)
            if svenn_id is None or tripletex_id is None:
                results.append(Result(row, "skipped", error={"reason": "no active link"}))
                continue
            link = LinkWrite("merge_base", row.entity, svenn_id, tripletex_id, base=base)
            results.append(Result(row, "done", result_id=tripletex_id, links=[link]))
        for chunk in _chunks(results, 1000):
            self._settle(chunk, with_intent=True)

    def _finalize_bases(self) -> None:
        """A generated number (P5, E2) that did not reach Tripletex is not in the base.

        The create on the other side stored the number in the new link's base; left
        there, the number-less Tripletex record would look like an edit that blanked it.
        """
        writes = [
            LinkWrite("merge_base", row.entity, svenn_id, row.tripletex_id, base={"number": None})
            for row in self._failed_numbers
            if (svenn_id := self.index.svenn_of(row.entity, row.tripletex_id or -1)) is not None
        ]
        self._failed_numbers.clear()
        if not writes:
            return
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                write_links(conn, self.tenant, writes)
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise

    def _pair_ids(self, row: PlanRow) -> tuple[int | None, int | None]:
        """Both ids of the row's pair, completing a missing one through the links."""
        svenn_id, tripletex_id = row.svenn_id, row.tripletex_id
        if svenn_id is None and tripletex_id is not None:
            svenn_id = self.index.svenn_of(row.entity, tripletex_id)
        if tripletex_id is None and svenn_id is not None:
            tripletex_id = self.index.tripletex_of(row.entity, svenn_id)
        return svenn_id, tripletex_id

    # -- Tripletex ------------------------------------------------------------------------
    def _tripletex_writes(self, entity: str, rows: list[PlanRow], kind: str) -> None:
        if not rows:
            return
        ready: list[tuple[PlanRow, dict[str, Any]]] = []
        early: list[Result] = []
        for row in rows:
            if kind == "create" and self.index.is_linked(row.entity, "svenn", row.svenn_id):
                early.append(Result(row, "skipped", error={"reason": "already linked"}))
                continue
            body, failed = self._prepare(row, "tripletex", True)
            if failed is not None:
                early.append(failed)
                continue
            guard(row, body)
            if kind == "update":
                body = dict(body)
                body["id"] = row.tripletex_id
                version = self._tx_version.get((entity, row.tripletex_id))
                if version is None:
                    version = row.expected_version
                if version is None and isinstance(row.payload, dict):
                    version = row.payload.get("version")
                if version is not None:
                    body["version"] = version
            ready.append((row, body))
        self._settle(early, with_intent=True)
        for chunk in _chunks(ready, self.batch_size):
            if self._is_down("tripletex"):
                self._settle(self._not_attempted("tripletex", chunk), with_intent=True)
                continue
            self._intents([(r, b, None) for r, b in chunk])
            if kind == "create":
                results = self._tripletex_create(entity, chunk)
            elif entity in TRIPLETEX_PUT_LIST:
                results = self._tripletex_put_list(entity, chunk)
            else:
                results = self._parallel(chunk, lambda item: self._tripletex_put_one(entity, *item))
            self._observe("tripletex", results)
            self._settle(results)

    def _tripletex_put_list(
        self, entity: str, items: list[tuple[PlanRow, dict[str, Any]]]
    ) -> list[Result]:
        try:
            values = self.tripletex.put_list(
                f"{TRIPLETEX_PATH[entity]}/list", [body for _, body in items]
            )
        except ApiError as err:
            if len(items) > 1 and not _is_transient(err):
                mid = len(items) // 2
                return self._tripletex_put_list(entity, items[:mid]) + self._tripletex_put_list(
                    entity, items[mid:]
                )
            return [self._failure(row, err) for row, _ in items]
        by_id = {v.get("id"): v for v in values if isinstance(v, dict)}
        return [self._updated_tripletex(row, by_id.get(row.tripletex_id)) for row, _ in items]

    def _tripletex_put_one(self, entity: str, row: PlanRow, body: dict[str, Any]) -> Result:
        try:
            value = self.tripletex.put(f"{TRIPLETEX_PATH[entity]}/{row.tripletex_id}", body)
        except ApiError as err:
            return self._failure(row, err)
        return self._updated_tripletex(row, value)

    def _updated_tripletex(self, row: PlanRow, value: dict[str, Any] | None) -> Result:
        version = value.get("version") if value else None
        if version is not None:
            self._tx_version[(row.entity, row.tripletex_id)] = version
        return Result(
            row,
            "done",
            result_id=row.tripletex_id,
            version=version,
            links=self._after_update(row, tripletex_version=version),
        )

    def _after_update(
        self,
        row: PlanRow,
        *,
        tripletex_version: int | None = None,
        svenn_version: int | None = None,
    ) -> list[LinkWrite]:
        """The pair's base takes the fields written at once, in the outcome's transaction (G6)."""
        svenn_id, tripletex_id = self._pair_ids(row)
        if svenn_id is None or tripletex_id is None:
            return []
        base = self._base_after(row) or {}
        written = {f: base[f] for f in (row.fields or []) if f in base}
        return [
            LinkWrite(
                "merge_base" if written else "versions",
                row.entity,
                svenn_id,
                tripletex_id,
                base=written,
                tripletex_version=tripletex_version,
                svenn_version=svenn_version,
            )
        ]

    def _tripletex_create(
        self, entity: str, items: list[tuple[PlanRow, dict[str, Any]]], attempt: int = 1
    ) -> list[Result]:
        try:
            values = self.tripletex.post_list(
                f"{TRIPLETEX_PATH[entity]}/list", [body for _, body in items]
            )
        except ApiError as err:
            if _may_have_landed(err):
                # G5: Tripletex has no idempotency key and may commit the batch after this
                # answer (even after a lookup now), so nothing is sent again in this run;
                # the next run's recovery looks each record up by key before any create.
                return [self._unknown(row, err) for row, _ in items]
            if _is_transient(err):
                return self._refused_tripletex_creates(entity, items, err, attempt)
            if len(items) > 1:
                mid = len(items) // 2
                return self._tripletex_create(entity, items[:mid]) + self._tripletex_create(
                    entity, items[mid:]
                )
            return [self._failure(row, err) for row, _ in items]
        return [
            self._created(row, "tripletex", value)
            for (row, _), value in zip(
                items, self._match_created(entity, items, values), strict=True
            )
        ]

    def _match_created(
        self, entity: str, items: list[tuple[PlanRow, dict[str, Any]]], values: list[Any]
    ) -> list[dict[str, Any] | None]:
        """Pair created objects with their rows by key (the order is not promised)."""
        field_name = KEY_FIELD["tripletex"][entity]
        by_key: dict[str, dict[str, Any]] = {}
        for value in values:
            if isinstance(value, dict) and value.get(field_name) not in (None, ""):
                by_key[str(value[field_name]).strip()] = value
        matched = []
        for position, (_, body) in enumerate(items):
            key = body.get(field_name)
            value = by_key.get(str(key).strip()) if key not in (None, "") else None
            if value is None and len(values) == len(items):
                value = values[position]
            matched.append(value)
        return matched

    def _refused_tripletex_creates(
        self,
        entity: str,
        items: list[tuple[PlanRow, dict[str, Any]]],
        err: ApiError,
        attempt: int,
    ) -> list[Result]:
        """A create batch refused outright (429, 503) did nothing: send it again, but only
        the records a lookup by key does not find (in case the refusal was not one, G5)."""
        results: list[Result] = []
        again: list[tuple[PlanRow, dict[str, Any]]] = []
        for row, body in items:
            try:
                found = find_tripletex(
                    self.tripletex, entity, body.get(KEY_FIELD["tripletex"][entity])
                )
            except ApiError as lookup_err:
                results.append(self._unknown(row, lookup_err))
                continue
            if found is not None:
                results.append(self._created(row, "tripletex", found))
            else:
                again.append((row, body))
        if again and attempt < UNKNOWN_CREATE_ATTEMPTS:
            time.sleep(self.retry_wait_seconds * attempt)
            results += self._tripletex_create(entity, again, attempt + 1)
        else:
            results += [self._unknown(row, err) for row, _ in again]
        return results

    def _unknown(self, row: PlanRow, err: ApiError) -> Result:
        """No usable answer: the create may have landed, so its intent stays open and the
        next run's recovery looks the record up by key before it is created again (G5)."""
        finding = self._finding(row, "API_UNAVAILABLE", err=err, outcome_unknown=True)
        return Result(row, "unknown", error=_error_details(err), finding=finding)

    def _created(self, row: PlanRow, target: str, value: dict[str, Any] | None) -> Result:
        if not value or value.get("id") is None:
            return Result(row, "unknown", error={"reason": "created object missing from answer"})
        new_id, version = int(value["id"]), value.get("version")
        if target == "tripletex":
            svenn_id, tripletex_id, origin = row.svenn_id, new_id, "svenn"
            if version is not None:
                self._tx_version[(row.entity, new_id)] = version
        else:
            svenn_id, tripletex_id, origin = new_id, row.tripletex_id, "tripletex"
            if version is not None:
                self._sv_version[(row.entity, new_id)] = version
        link = LinkWrite(
            "insert",
            row.entity,
            svenn_id,
            tripletex_id,
            key=row.key,
            origin=origin,
            base=self._base_after(row),
            tripletex_version=version if target == "tripletex" else None,
            svenn_version=version if target == "svenn" else None,
        )
        return Result(row, "done", result_id=new_id, version=version, links=[link])

    # -- Svenn ----------------------------------------------------------------------------
    def _svenn_writes(self, rows: list[PlanRow]) -> None:
        """Svenn writes go in bulk requests (up to 100 operations of one resource each).

        Waves keep two writes to one record out of the same bulk (Svenn applies a bulk's
        operations in order, but each outcome must be settled before the next is planned on
        it). Intents are logged per chunk before its bulk is sent, so a lost answer leaves
        them open for recovery; every create carries its idempotency key, so the client may
        re-send a bulk whose answer was lost and Svenn replays instead of duplicating (G5).
        """
        if not rows:
            return
        ready: list[tuple[PlanRow, Any, str | None]] = []
        early: list[Result] = []
        for row in rows:
            if row.operation == "create" and self.index.is_linked(
                row.entity, "tripletex", row.tripletex_id
            ):
                early.append(Result(row, "skipped", error={"reason": "already linked"}))
                continue
            body, failed = self._prepare(row, "svenn", False)
            if failed is not None:
                early.append(failed)
                continue
            key = idempotency_key(self.tenant, row, body) if row.operation == "create" else None
            ready.append((row, body, key))
        self._settle(early, with_intent=True)
        size = max(1, min(self.batch_size, BULK_MAX_OPERATIONS))
        for wave in _waves(ready):  # two writes to one record never in the same bulk
            for chunk in _chunks(wave, size):
                if self._is_down("svenn"):
                    self._settle(self._not_attempted("svenn", chunk), with_intent=True)
                    continue
                self._intents(chunk)  # one transaction per chunk, before the bulk is sent
                results = self._svenn_chunk(chunk)
                self._observe("svenn", results)
                self._settle(results)

    def _svenn_chunk(self, chunk: list[tuple[PlanRow, Any, str | None]]) -> list[Result]:
        """One chunk's results in its order: deletions Tripletex still has are not sent."""
        verdicts = self._parallel(chunk, lambda item: self._deletion_verdict(item[0]))
        send = [item for item, verdict in zip(chunk, verdicts, strict=True) if verdict is None]
        sent = iter(self._svenn_bulk(send) if send else [])
        return [verdict or next(sent) for verdict in verdicts]

    def _deletion_verdict(self, row: PlanRow) -> Result | None:
        """None when the write may go out; for a complete/delete, a result when the GET by id
        did not prove the Tripletex record gone (G7: offset paging can miss a live record, so
        one GET per deletion proves it before Svenn loses anything; C7, P9)."""
        if row.operation not in ("delete", "complete"):
            return None
        try:  # the client already retries 429/5xx with backoff
            still_there = self._still_in_tripletex(row)
        except ApiError as err:
            return self._failure(row, err)
        return self._not_confirmed(row) if still_there else None

    def _svenn_bulk(self, items: list[tuple[PlanRow, Any, str | None]]) -> list[Result]:
        """Send ``items`` as one bulk; an operation that failed transiently (or the whole
        bulk) is sent again up to ``UNKNOWN_CREATE_ATTEMPTS`` times, as the single calls
        were: creates repeat safely under their idempotency keys, updates under if_match."""
        resource = PLURAL[items[0][0].entity]  # type: ignore[index]
        results: dict[int, Result] = {}
        pending = list(range(len(items)))
        for attempt in range(1, UNKNOWN_CREATE_ATTEMPTS + 1):
            last = attempt == UNKNOWN_CREATE_ATTEMPTS
            try:
                answers = self.svenn.bulk(resource, [self._svenn_op(*items[i]) for i in pending])
            except ApiError as err:
                if _is_transient(err) and not last:
                    time.sleep(self.retry_wait_seconds * attempt)
                    continue
                results.update({i: self._svenn_failure(items[i][0], err) for i in pending})
                break
            again = []
            for i, answer in zip(pending, answers, strict=True):
                err = answer.as_error(resource)
                if err is None:
                    results[i] = self._svenn_done(items[i][0], answer.record)
                elif _is_transient(err) and not last:
                    again.append(i)
                else:
                    results[i] = self._svenn_failure(items[i][0], err)
            pending = again
            if not pending:
                break
            time.sleep(self.retry_wait_seconds * attempt)
        return [results[i] for i in range(len(items))]

    def _svenn_op(self, row: PlanRow, body: Any, key: str | None) -> dict[str, Any]:
        if row.operation == "create":
            return create_op(body, key)
        if row.operation == "delete":  # C7: deleted in Tripletex → deleted in Svenn
            return delete_op(row.svenn_id)  # type: ignore[arg-type]
        if_match = self._sv_version.get((row.entity, row.svenn_id), row.expected_version)
        return update_op(row.svenn_id, body, if_match)  # type: ignore[arg-type]

    def _svenn_failure(self, row: PlanRow, err: ApiError) -> Result:
        """A refused operation, mapped as a single call's error was (G5, G8, G10)."""
        if _is_transient(err) and row.operation == "create":
            return self._unknown(row, err)
        if row.operation == "delete" and err.status == 404:  # gone in Svenn already
            return Result(row, "done", links=[self._detach(row)], finding=self._detached(row, True))
        return self._failure(row, err)

    def _svenn_done(self, row: PlanRow, record: dict[str, Any] | None) -> Result:
        """An operation Svenn accepted; a complete/delete detaches only now (P9, C7)."""
        if row.operation == "create":
            return self._created(row, "svenn", record)
        version = record.get("version") if isinstance(record, dict) else None
        if row.operation == "delete":
            return Result(
                row,
                "done",
                result_id=row.svenn_id,
                links=[self._detach(row)],
                finding=self._detached(row, True),
            )
        if version is not None:
            self._sv_version[(row.entity, row.svenn_id)] = version  # type: ignore[index]
        if row.operation == "complete":
            return Result(
                row,
                "done",
                result_id=row.svenn_id,
                version=version,
                links=[self._detach(row)],
                finding=self._detached(row, True),
            )
        links = self._after_update(row, svenn_version=version)
        return Result(row, "done", result_id=row.svenn_id, version=version, links=links)

    # -- outage breaker -------------------------------------------------------------------
    def _observe(self, system: str, results: list[Result]) -> None:
        """Count consecutive chunks where the API stayed unavailable; any success resets."""
        if any(r.state == "done" for r in results):
            self._outage[system] = 0
        elif any(r.finding is not None and r.finding.code == "API_UNAVAILABLE" for r in results):
            self._outage[system] = self._outage.get(system, 0) + 1

    def _is_down(self, system: str) -> bool:
        return self._outage.get(system, 0) >= OUTAGE_AFTER_CHUNKS

    def _not_attempted(self, system: str, items: list[tuple]) -> list[Result]:
        """Writes not sent because the API is down: findings now, a retry next run (G5)."""
        return [
            Result(
                item[0],
                "failed",
                error={"reason": f"not attempted: {system} unavailable"},
                finding=self._finding(item[0], "API_UNAVAILABLE", not_attempted=True),
            )
            for item in items
        ]

    def _still_in_tripletex(self, row: PlanRow) -> bool:
        """Whether the Tripletex record a deletion is derived from still exists (a 404 is
        the only proof it is gone; any other error propagates and nothing is deleted)."""
        if row.tripletex_id is None:
            return False
        try:
            self.tripletex.get(f"{TRIPLETEX_PATH[row.entity]}/{row.tripletex_id}", fields="id")
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def _parallel(self, items: list[Any], call: Callable[[Any], Result]) -> list[Result]:
        if self.workers <= 1 or len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(call, items))


def find_tripletex(client: Any, entity: str, key: Any) -> dict[str, Any] | None:
    """The one Tripletex record whose key equals ``key`` (inactive customers too), or None."""
    if key in (None, ""):
        return None
    key_field = KEY_FIELD["tripletex"][entity]
    fields = f"id,version,{key_field}"
    param = {TRIPLETEX_KEY_FILTER[entity]: key}
    passes = [{"isInactive": False}, {"isInactive": True}] if entity == "customer" else [{}]
    for extra in passes:
        values = client.list_all(TRIPLETEX_PATH[entity], {**param, **extra}, fields)
        exact = [v for v in values if str(v.get(key_field) or "").strip() == str(key).strip()]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            return None  # ambiguous: leave it to the rules (DUPLICATE_KEY)
    return None
