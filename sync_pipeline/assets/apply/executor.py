"""Carry out one run's plan against Svenn and Tripletex (G4, G5, G6, G8, P5, E2, P9, C7).

Rows run in dependency order (the plan's entity order: employees, customers,
projects, then participants), and within an entity: key matches (``link``) first,
then, at the same time (a thread each), Tripletex number assignments, creates and updates
(``tripletex_writes``) and Svenn writes in bulk (``svenn_writes``), then detaches. The two
systems' writes of one entity do not depend on each other: a body's ``$ref`` names a record
of the system it is sent to, created in an earlier phase or earlier in that system's own
order; so neither system waits for the other's rate limit. Every write goes through the write-ahead
log (``wal``); the link change an outcome implies is committed in the same transaction as
that outcome (``outcomes``). An API that stays unavailable is no longer called for the rest
of the run (``breaker``).

A link is detached only as the outcome of what proves the deletion (P8, P9, C6, C7, E4,
G13): a Svenn complete/delete that Svenn accepted, after a GET by id proved the Tripletex
record gone (404); a detach row whose payload asks ``verify`` after that same GET; or a
plain detach row (a Svenn tombstone). A skipped, refused or failed write leaves the link as
it was for the next run; every detach logs LINK_DETACHED with the rule and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sync_pipeline.assets.apply.breaker import Breaker
from sync_pipeline.assets.apply.links import LinkIndex, LinkWrite
from sync_pipeline.assets.apply.outcomes import (
    ApplyReport,
    Connect,
    Outcomes,
    PlanRow,
    Result,
    UnsafeWriteError,
    chunks,
    load_plan,
    parallel,
)
from sync_pipeline.assets.apply.svenn_writes import SvennWrites
from sync_pipeline.assets.apply.tripletex_writes import TripletexWrites, guard
from sync_pipeline.model import Entity
from sync_pipeline.resources.systems import SvennSystem, TripletexSystem

__all__ = [
    "OPERATIONS",
    "ApplyReport",
    "Connect",
    "PlanExecutor",
    "PlanRow",
    "Result",
    "UnsafeWriteError",
    "load_plan",
]

logger = logging.getLogger(__name__)

#: The operations the executor carries out, per target (anything else stops the run).
OPERATIONS = {
    "state": ("link", "update", "detach"),
    "tripletex": ("set_number", "create", "update"),
    "svenn": ("create", "update", "complete", "delete"),
}


class PlanExecutor:
    """Applies plan rows for one tenant and run; see the module docstring for the order."""

    def __init__(
        self,
        *,
        tenant: str,
        run_id: str,
        connect: Connect,
        tripletex: TripletexSystem,
        svenn: SvennSystem,
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
        self.log = log
        self.outcomes = Outcomes(tenant=tenant, run_id=run_id, connect=connect)
        self.report = self.outcomes.report
        breaker = Breaker(self.outcomes)
        pace = {
            "batch_size": batch_size,
            "workers": workers,
            "retry_wait_seconds": retry_wait_seconds,
        }
        self.tripletex_writes = TripletexWrites(tripletex, self.outcomes, breaker, **pace)
        self.svenn_writes = SvennWrites(
            svenn, self.outcomes, breaker, self.tripletex_writes.deletion_proof, **pace
        )
        self.breaker = breaker

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
            self.outcomes.index = LinkIndex.load(conn, self.tenant)
        phases: dict[Entity, list[PlanRow]] = {}
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

    def _run_phase(self, entity: Entity, rows: list[PlanRow]) -> None:
        def pick(target: str, *ops: str) -> list[PlanRow]:
            return [r for r in rows if r.target == target and r.operation in ops]

        numbers = pick("tripletex", "set_number")
        creates = pick("tripletex", "create")
        updates = pick("tripletex", "update")
        svenn_rows = pick("svenn", *OPERATIONS["svenn"])

        def tripletex() -> None:
            self.tripletex_writes.write(entity, numbers, "update")
            self.tripletex_writes.write(entity, creates, "create")
            self.tripletex_writes.write(entity, updates, "update")

        self._links(pick("state", "link"))
        self._settle_bases(pick("state", "update"))
        both_systems(
            tripletex if numbers or creates or updates else None,
            (lambda: self.svenn_writes.write(svenn_rows)) if svenn_rows else None,
        )
        self._detaches(pick("state", "detach"))
        self._finalize_bases()

    # -- state operations -----------------------------------------------------------------
    def _settle_in_chunks(self, results: list[Result]) -> None:
        for chunk in chunks(results, 1000):
            self.outcomes.settle(chunk, with_intent=True)

    def _links(self, rows: list[PlanRow]) -> None:
        """Key matches (G3) become links at once, with the base the rules computed.

        That base holds each side's values *before* this run's writes, and each update
        merges the fields it wrote when it succeeds. So a write that fails or is cut
        off by a crash leaves the stale side looking unchanged, never edited (G5, G6).
        """
        index = self.outcomes.index
        results = []
        for row in rows:
            have_t = index.tripletex_of(row.entity, row.svenn_id) if row.svenn_id else None
            have_s = index.svenn_of(row.entity, row.tripletex_id) if row.tripletex_id else None
            base = self.outcomes.base_after(row)
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
        self._settle_in_chunks(results)

    def _detaches(self, rows: list[PlanRow]) -> None:
        """Detach rows: a Svenn tombstone detaches at once; a deletion derived from a Tripletex
        listing (payload ``verify``) only once a GET by id answered 404 (G7, E4, P9)."""
        plain = [r for r in rows if not self._verifies(r)]
        verified = [r for r in rows if self._verifies(r)]
        self._settle_in_chunks([self.outcomes.detached_result(r, verified=False) for r in plain])
        for chunk in chunks(verified, self.batch_size):
            if self.breaker.skip_if_down("tripletex", [(r,) for r in chunk]):
                continue
            results = parallel(chunk, self._verified_detach, self.workers)
            self.breaker.observe("tripletex", results)
            self.outcomes.settle(results, with_intent=True)

    @staticmethod
    def _verifies(row: PlanRow) -> bool:
        return isinstance(row.payload, dict) and row.payload.get("verify") == "tripletex_gone"

    def _verified_detach(self, row: PlanRow) -> Result:
        proof = self.tripletex_writes.deletion_proof(row)
        return proof or self.outcomes.detached_result(row, verified=True)

    def _settle_bases(self, rows: list[PlanRow]) -> None:
        """Fields both sides changed alike (target ``state``, ``update``): the base follows."""
        results = []
        for row in rows:
            base = self.outcomes.base_after(row) or {}
            svenn_id, tripletex_id = self.outcomes.pair_ids(row)
            if svenn_id is None or tripletex_id is None:
                results.append(Result(row, "skipped", error={"reason": "no active link"}))
                continue
            link = LinkWrite("merge_base", row.entity, svenn_id, tripletex_id, base=base)
            results.append(Result(row, "done", result_id=tripletex_id, links=[link]))
        self._settle_in_chunks(results)

    def _finalize_bases(self) -> None:
        """A generated number (P5, E2) that did not reach Tripletex is not in the base.

        The create on the other side stored the number in the new link's base; left
        there, the number-less Tripletex record would look like an edit that blanked it.
        """
        index = self.outcomes.index
        writes = [
            LinkWrite("merge_base", row.entity, svenn_id, row.tripletex_id, base={"number": None})
            for row in self.outcomes.failed_numbers
            if (svenn_id := index.svenn_of(row.entity, row.tripletex_id or -1)) is not None
        ]
        self.outcomes.failed_numbers.clear()
        if writes:
            self.outcomes.write_links(writes)


def both_systems(*writes: Callable[[], None] | None) -> None:
    """Run each system's writes in a thread of its own and wait for all of them.

    A writer that fails (an unsafe write, a crash of the client) does not cut the other
    short: its writes are logged and settled as they land. The first failure is raised
    once both have stopped."""
    todo = [w for w in writes if w is not None]
    if len(todo) <= 1:
        for write in todo:
            write()
        return
    with ThreadPoolExecutor(len(todo), thread_name_prefix="apply") as pool:
        futures = [pool.submit(write) for write in todo]
    for future in futures:
        future.result()
