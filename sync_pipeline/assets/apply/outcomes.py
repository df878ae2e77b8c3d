"""What happened to each plan row, and how it is recorded (G4, G5, G6, G10, G13).

A row's :class:`Result` carries its state, its finding and the link change it implies; the
:class:`Outcomes` book commits each batch of results — WAL outcome, link writes and findings —
in one transaction, and keeps the run's :class:`ApplyReport`. It also builds the results the
writers share (a failure classified, a create whose outcome is unknown, a link detached), so
each writer (``tripletex_writes``, ``svenn_writes``) says only what the API answered.
"""

from __future__ import annotations

import json
import logging
import threading
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
from sync_pipeline.model import CODES, Entity
from sync_pipeline.resources.http import ApiError, ApiUnavailableError
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.systems import Written

logger = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

#: Answers that say the request was not carried out: 429 (rate limited) and 503 (RFC 9110:
#: "unable to handle the request"). Any other transient failure of a create — a read
#: timeout, a dropped connection, 500/502/504 — may have been committed (G5).
REFUSED_STATUSES = frozenset({429, 503})


class UnsafeWriteError(RuntimeError):
    """The plan asks for a write the sync must never make; a bug upstream, so the run stops."""


@dataclass
class PlanRow:
    seq: int
    entity: Entity
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


# -- API errors -------------------------------------------------------------------------------
def _api_message(err: ApiError) -> str:
    parts = [err.message.strip()] if err.message and err.message.strip() else []
    for m in err.validation_messages:
        text = f"{m['field']}: {m['message']}" if m.get("field") else str(m.get("message") or "")
        if text:
            parts.append(text)
    return "; ".join(parts) or f"HTTP {err.status}"


def error_details(err: ApiError) -> dict[str, Any]:
    return {
        "system": err.system,
        "status": err.status,
        "code": err.code,
        "message": err.message,
        "validation_messages": err.validation_messages,
        "request_id": err.request_id,
    }


def is_transient(err: ApiError) -> bool:
    return isinstance(err, ApiUnavailableError) or err.is_transient


def may_have_landed(err: ApiError) -> bool:
    """A transient failure after which a non-idempotent create may exist (G5)."""
    return is_transient(err) and err.status not in REFUSED_STATUSES


# -- batches ----------------------------------------------------------------------------------
def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parallel(items: list[Any], call: Callable[[Any], Result], workers: int) -> list[Result]:
    """``call`` for each item, on up to ``workers`` threads, results in the items' order."""
    if workers <= 1 or len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, items))


class Outcomes:
    """The run's book of outcomes: settles results with their link changes and findings,
    keeps the in-memory link index and the versions writes returned, and builds the results
    every writer shares.

    Both systems' writers use it from a thread each (the executor overlaps them): the
    write-ahead log and every settlement go through one lock, so they commit one at a time
    (no two transactions of this run race on the same link) and the index and the report
    change with them. The API calls themselves happen outside it.
    """

    def __init__(self, *, tenant: str, run_id: str, connect: Connect) -> None:
        self.tenant = tenant
        self.run_id = run_id
        self.connect = connect
        self.report = ApplyReport()
        self.index = LinkIndex()
        #: Versions the writes of this run returned, per (entity, id): a second write to a
        #: record sends the version its first write made (G8).
        self.tripletex_versions: dict[tuple[str, int], int] = {}
        self.svenn_versions: dict[tuple[str, int], int] = {}
        #: P5/E2 number assignments that did not reach Tripletex (see ``finalize_bases``).
        self.failed_numbers: list[PlanRow] = []
        self._lock = threading.RLock()

    # -- the write-ahead log ------------------------------------------------------------
    def intents(self, items: list[tuple[PlanRow, Any, str | None]]) -> None:
        """Log the intents of writes about to be sent (one transaction)."""
        intents = [_intent(row, payload, key) for row, payload, key in items]
        with self._lock, self.connect() as conn:
            wal.record_intents(conn, self.tenant, self.run_id, intents)

    def settle(self, results: list[Result], *, with_intent: bool = False) -> None:
        """Commit outcomes, their link changes and findings in one transaction."""
        if not results:
            return
        with self._lock:
            self._settle(results, with_intent)

    def _settle(self, results: list[Result], with_intent: bool) -> None:
        link_writes = [w for r in results if r.state == "done" for w in r.links]
        findings = [r.finding for r in results if r.finding is not None]
        with self.connect() as conn, transaction(conn):
            refused = write_links(conn, self.tenant, link_writes)
            if refused:
                findings += self._refuse_links(results, refused)
                link_writes = [w for w in link_writes if all(w is not x for x in refused)]
            settled = [r for r in results if r.state != "unknown"]
            outcomes = [wal.Outcome(r.row.seq, r.state, r.result_id, r.error) for r in settled]
            if with_intent:
                intents = [_intent(r.row) for r in results]
                wal.record_intents(conn, self.tenant, self.run_id, intents)
            wal.record_outcomes(conn, self.tenant, self.run_id, outcomes)
            insert_findings(conn, findings)
        apply_to_index(self.index, link_writes)
        for r in results:
            self.report.operations[(r.row.entity, r.row.operation)] += 1
            self.report.states[r.state] += 1
            self.report.by_entity_state[(r.row.entity, r.row.operation, r.state)] += 1
            if r.row.target != "state":
                self.report.api_writes[r.state] += 1
            if r.state in ("failed", "unknown") and r.row.operation == "set_number":
                self.failed_numbers.append(r.row)
        self.report.findings.extend(findings)

    def write_links(self, writes: list[LinkWrite]) -> None:
        """Link changes no outcome carries (one transaction)."""
        with self._lock, self.connect() as conn, transaction(conn):
            write_links(conn, self.tenant, writes)

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
                findings.append(self.finding(r.row, "LINK_REFUSED", result_id=r.result_id))
        return findings

    # -- findings and failures --------------------------------------------------------------
    def finding(
        self, row: PlanRow, code: str, *, err: ApiError | None = None, **details: Any
    ) -> Finding:
        spec = CODES[code]
        message = spec.message
        if "{api_message}" in message:
            message = message.format(api_message=_api_message(err) if err else "ukjent feil")
        info: dict[str, Any] = {
            "rule_id": spec.rule_id,
            "operation": row.operation,
            "target": row.target,
            "plan_seq": row.seq,
            **(error_details(err) if err else {}),
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

    def failure(self, row: PlanRow, err: ApiError) -> Result:
        """Classify an API refusal: concurrent edit (G8), outage (G5) or rejection (G10)."""
        if is_transient(err):
            code = "API_UNAVAILABLE"
        elif err.status == 412 or (err.status == 409 and row.operation != "create"):
            code = "CONCURRENT_EDIT"
        else:
            code = "API_REJECTED"
        return Result(
            row, "failed", error=error_details(err), finding=self.finding(row, code, err=err)
        )

    def unknown(self, row: PlanRow, err: ApiError) -> Result:
        """No usable answer: the create may have landed, so its intent stays open and the
        next run's recovery looks the record up by key before it is created again (G5)."""
        finding = self.finding(row, "API_UNAVAILABLE", err=err, outcome_unknown=True)
        return Result(row, "unknown", error=error_details(err), finding=finding)

    def skipped_if_linked(self, row: PlanRow, source: str, source_id: int | None) -> Result | None:
        """A create whose source record is linked already (recovery linked it this run)."""
        if self.index.is_linked(row.entity, source, source_id):  # type: ignore[arg-type]
            return Result(row, "skipped", error={"reason": "already linked"})
        return None

    def bodies(
        self,
        rows: list[PlanRow],
        target: str,
        wrap: bool,
        check: Callable[[PlanRow, Any], None] | None = None,
    ) -> list[tuple[PlanRow, Any]]:
        """Each row with the body to send to ``target``; a create whose source record is
        linked already, or a row with a missing reference, is settled here instead (with its
        intent). ``check`` sees every body before anything is settled (it may refuse the run)."""
        source = "svenn" if target == "tripletex" else "tripletex"
        ready: list[tuple[PlanRow, Any]] = []
        early: list[Result] = []
        for row in rows:
            if row.operation == "create":
                skipped = self.skipped_if_linked(row, source, getattr(row, f"{source}_id"))
                if skipped is not None:
                    early.append(skipped)
                    continue
            body, failed = self.prepare(row, target, wrap)
            if failed is not None:
                early.append(failed)
                continue
            if check is not None:
                check(row, body)
            ready.append((row, body))
        self.settle(early, with_intent=True)
        return ready

    def prepare(self, row: PlanRow, want: str, wrap: bool) -> tuple[Any, Result | None]:
        """The body with ``$ref``s resolved, or a failed result when a reference is missing."""
        try:
            return resolve_refs(row.payload, self.index, want, wrap), None  # type: ignore[arg-type]
        except UnresolvedRefError as exc:
            finding = self.finding(row, "DEPENDENCY_NOT_SYNCED", reference=exc.spec)
            return None, Result(row, "failed", error={"unresolved_ref": exc.spec}, finding=finding)

    # -- links ----------------------------------------------------------------------------
    def base_after(self, row: PlanRow) -> dict[str, Any] | None:
        if row.base_after is None:
            return None
        try:
            return resolve_refs(row.base_after, self.index, "tripletex", False)
        except UnresolvedRefError:
            return None

    def pair_ids(self, row: PlanRow) -> tuple[int | None, int | None]:
        """Both ids of the row's pair, completing a missing one through the links."""
        svenn_id, tripletex_id = row.svenn_id, row.tripletex_id
        if svenn_id is None and tripletex_id is not None:
            svenn_id = self.index.svenn_of(row.entity, tripletex_id)
        if tripletex_id is None and svenn_id is not None:
            tripletex_id = self.index.tripletex_of(row.entity, svenn_id)
        return svenn_id, tripletex_id

    def created(self, row: PlanRow, target: str, written: Written | None) -> Result:
        """A create the API accepted: the new pair's link, with the base the rules planned."""
        if written is None:
            return Result(row, "unknown", error={"reason": "created object missing from answer"})
        new_id, version = written.id, written.version
        if target == "tripletex":
            svenn_id, tripletex_id, origin = row.svenn_id, new_id, "svenn"
            if version is not None:
                self.tripletex_versions[(row.entity, new_id)] = version
        else:
            svenn_id, tripletex_id, origin = new_id, row.tripletex_id, "tripletex"
            if version is not None:
                self.svenn_versions[(row.entity, new_id)] = version
        link = LinkWrite(
            "insert",
            row.entity,
            svenn_id,
            tripletex_id,
            key=row.key,
            origin=origin,
            base=self.base_after(row),
            tripletex_version=version if target == "tripletex" else None,
            svenn_version=version if target == "svenn" else None,
        )
        return Result(row, "done", result_id=new_id, version=version, links=[link])

    def updated(
        self,
        row: PlanRow,
        *,
        tripletex_version: int | None = None,
        svenn_version: int | None = None,
    ) -> Result:
        """An update the API accepted: the pair's base takes the fields written at once, in
        the outcome's transaction (G6)."""
        links: list[LinkWrite] = []
        svenn_id, tripletex_id = self.pair_ids(row)
        if svenn_id is not None and tripletex_id is not None:
            base = self.base_after(row) or {}
            written = {f: base[f] for f in (row.fields or []) if f in base}
            links.append(
                LinkWrite(
                    "merge_base" if written else "versions",
                    row.entity,
                    svenn_id,
                    tripletex_id,
                    base=written,
                    tripletex_version=tripletex_version,
                    svenn_version=svenn_version,
                )
            )
        if row.target == "tripletex":
            result_id, version = row.tripletex_id, tripletex_version
        else:
            result_id, version = row.svenn_id, svenn_version
        return Result(row, "done", result_id=result_id, version=version, links=links)

    def detach(self, row: PlanRow) -> LinkWrite:
        """The link change of a proven deletion, with the rule that detached it (G13)."""
        return LinkWrite(
            "detach",
            row.entity,
            row.svenn_id,
            row.tripletex_id,
            rule_id=_detaching_rule(row),
            reason=row.reason,
            run_id=self.run_id,
        )

    def detached(self, row: PlanRow, verified: bool = False) -> Finding:
        """G13: a detached link is always logged, with the rule that detached it and why."""
        extra = {"verified_by": "GET by id answered 404"} if verified else {}
        return self.finding(
            row, "LINK_DETACHED", rule_id=_detaching_rule(row), reason=row.reason, **extra
        )

    def detached_result(
        self,
        row: PlanRow,
        *,
        verified: bool,
        result_id: int | None = None,
        version: int | None = None,
    ) -> Result:
        """A row whose outcome detaches its link (a proven deletion), logged (G13)."""
        return Result(
            row,
            "done",
            result_id=result_id,
            version=version,
            links=[self.detach(row)],
            finding=self.detached(row, verified),
        )

    def not_confirmed(self, row: PlanRow) -> Result:
        """The record missed from the listing still exists: nothing is deleted or detached."""
        return Result(
            row,
            "skipped",
            error={"reason": "still in Tripletex; left for the next run"},
            finding=self.finding(row, "DELETION_NOT_CONFIRMED", deletion_rule=_detaching_rule(row)),
        )


def _intent(row: PlanRow, payload: Any = None, idempotency_key: str | None = None) -> wal.Intent:
    return wal.Intent(
        row.seq, row.entity, row.target, row.operation, row.svenn_id, row.tripletex_id, row.key,
        idempotency_key, payload,
    )  # fmt: skip


def _detaching_rule(row: PlanRow) -> str | None:
    return (row.rule_ids or [None])[0]
