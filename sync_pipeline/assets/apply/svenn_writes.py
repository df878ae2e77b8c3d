"""Svenn writes: creates, updates, completes and deletes in bulk requests (G4, G5, G8, P9, C7).

Up to 100 operations of one entity go in one bulk; waves keep two writes to one record out
of the same bulk (Svenn applies a bulk's operations in order, but each outcome must be
settled before the next is planned on it). Every create carries its idempotency key, so a
bulk whose answer was lost is re-sent (or recovered next run) and replayed by Svenn, never
duplicated; each operation is settled as the single call would have been. A complete or
delete goes into a bulk only after a GET by id proved the Tripletex record gone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sync_pipeline.assets.apply.breaker import Breaker
from sync_pipeline.assets.apply.outcomes import (
    Outcomes,
    PlanRow,
    Result,
    chunks,
    is_transient,
    parallel,
)
from sync_pipeline.assets.apply.tripletex_writes import UNKNOWN_CREATE_ATTEMPTS
from sync_pipeline.model import PLURAL
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.svenn import (
    BULK_MAX_OPERATIONS,
    BulkResult,
    create_op,
    delete_op,
    update_op,
)
from sync_pipeline.resources.systems import SvennSystem

Item = tuple[PlanRow, Any, str | None]


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


def waves(items: list[Item]) -> list[list[Item]]:
    """Split rows so each record appears once per wave, keeping plan order within a record."""
    out: list[list[Item]] = []
    seen: Counter = Counter()
    for item in items:
        row = item[0]
        record = (row.entity, row.svenn_id) if row.svenn_id is not None else (row.seq,)
        n = seen[record]
        seen[record] += 1
        if n == len(out):
            out.append([])
        out[n].append(item)
    return out


class SvennWrites:
    """One run's writes to Svenn, settled through the run's :class:`Outcomes`.

    ``deletion_proof``: None when the Tripletex record a complete/delete is derived from is
    proven gone, else the row's result (``TripletexWrites.deletion_proof``).
    """

    def __init__(
        self,
        client: SvennSystem,
        outcomes: Outcomes,
        breaker: Breaker,
        deletion_proof: Callable[[PlanRow], Result | None],
        *,
        batch_size: int,
        workers: int,
        retry_wait_seconds: float,
    ) -> None:
        self.client = client
        self.outcomes = outcomes
        self.breaker = breaker
        self.deletion_proof = deletion_proof
        self.batch_size = batch_size
        self.workers = workers
        self.retry_wait_seconds = retry_wait_seconds

    def write(self, rows: list[PlanRow]) -> None:
        """Intents are logged per chunk before its bulk is sent, so a lost answer leaves them
        open for recovery; every create carries its idempotency key, so the client may re-send
        a bulk whose answer was lost and Svenn replays instead of duplicating (G5)."""
        if not rows:
            return
        ready: list[Item] = [
            (row, body, idempotency_key(self.outcomes.tenant, row, body))
            if row.operation == "create"
            else (row, body, None)
            for row, body in self.outcomes.bodies(rows, "svenn", False)
        ]
        size = max(1, min(self.batch_size, BULK_MAX_OPERATIONS))
        for wave in waves(ready):  # two writes to one record never in the same bulk
            for chunk in chunks(wave, size):
                if self.breaker.skip_if_down("svenn", chunk):
                    continue
                self.outcomes.intents(chunk)  # one transaction per chunk, before the bulk
                results = self._chunk(chunk)
                self.breaker.observe("svenn", results)
                self.outcomes.settle(results)

    def _chunk(self, chunk: list[Item]) -> list[Result]:
        """One chunk's results in its order: deletions Tripletex still has are not sent."""
        verdicts = parallel(chunk, lambda item: self._verdict(item[0]), self.workers)
        send = [item for item, verdict in zip(chunk, verdicts, strict=True) if verdict is None]
        sent = iter(self._bulk(send) if send else [])
        return [verdict or next(sent) for verdict in verdicts]

    def _verdict(self, row: PlanRow) -> Result | None:
        """None when the write may go out; a complete/delete waits for its proof (C7, P9)."""
        if row.operation not in ("delete", "complete"):
            return None
        return self.deletion_proof(row)

    def _bulk(self, items: list[Item]) -> list[Result]:
        """Send ``items`` as one bulk; an operation that failed transiently (or the whole
        bulk) is sent again up to ``UNKNOWN_CREATE_ATTEMPTS`` times, as the single calls
        were: creates repeat safely under their idempotency keys, updates under if_match."""
        entity = items[0][0].entity
        results: dict[int, Result] = {}
        pending = list(range(len(items)))
        for attempt in range(1, UNKNOWN_CREATE_ATTEMPTS + 1):
            last = attempt == UNKNOWN_CREATE_ATTEMPTS
            try:
                answers = self.client.write_many(
                    entity,
                    [self._op(*items[i]) for i in pending],
                )
            except ApiError as err:
                if is_transient(err) and not last:
                    time.sleep(self.retry_wait_seconds * attempt)
                    continue
                results.update({i: self._failure(items[i][0], err) for i in pending})
                break
            again = []
            for i, answer in zip(pending, answers, strict=True):
                err = answer.as_error(PLURAL[entity])
                if err is None:
                    results[i] = self._done(items[i][0], answer)
                elif is_transient(err) and not last:
                    again.append(i)
                else:
                    results[i] = self._failure(items[i][0], err)
            pending = again
            if not pending:
                break
            time.sleep(self.retry_wait_seconds * attempt)
        return [results[i] for i in range(len(items))]

    def _op(self, row: PlanRow, body: Any, key: str | None) -> dict[str, Any]:
        if row.operation == "create":
            return create_op(body, key)
        if row.operation == "delete":  # C7: deleted in Tripletex → deleted in Svenn
            return delete_op(row.svenn_id)  # type: ignore[arg-type]
        if_match = self.outcomes.svenn_versions.get(
            (row.entity, row.svenn_id), row.expected_version
        )  # type: ignore[arg-type]
        return update_op(row.svenn_id, body, if_match)  # type: ignore[arg-type]

    def _failure(self, row: PlanRow, err: ApiError) -> Result:
        """A refused operation, mapped as a single call's error was (G5, G8, G10)."""
        if is_transient(err) and row.operation == "create":
            return self.outcomes.unknown(row, err)
        if row.operation == "delete" and err.status == 404:  # gone in Svenn already
            return self.outcomes.detached_result(row, verified=True)
        return self.outcomes.failure(row, err)

    def _done(self, row: PlanRow, answer: BulkResult) -> Result:
        """An operation Svenn accepted; a complete/delete detaches only now (P9, C7)."""
        if row.operation == "create":
            return self.outcomes.created(row, "svenn", answer.written)
        if row.operation == "delete":
            return self.outcomes.detached_result(row, verified=True, result_id=row.svenn_id)
        record = answer.record
        version = record.get("version") if isinstance(record, dict) else None
        if version is not None:
            self.outcomes.svenn_versions[(row.entity, row.svenn_id)] = version  # type: ignore[index]
        if row.operation == "complete":
            return self.outcomes.detached_result(
                row, verified=True, result_id=row.svenn_id, version=version
            )
        return self.outcomes.updated(row, svenn_version=version)
