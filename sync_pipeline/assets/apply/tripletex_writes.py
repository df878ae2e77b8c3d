"""Tripletex writes: number assignments, creates and updates in batches (G4, G5, G8, P4, C3).

Creates go through ``create_many`` and updates through ``update_many`` where Tripletex has a
batch update (``update_one`` per record, in parallel, where it has none; the client knows
which). A batch Tripletex rejects (4xx) is bisected so the good records still land. A create
batch refused outright (429, 503) is looked up by key and sent again; one whose answer was
lost or is another 5xx may have been committed (perhaps later still), so it is never sent
again in the run: its intents stay open for the next run's recovery (G5). Tripletex also
proves deletions: a GET by id answering 404 is the only proof a record is gone (G7).
"""

from __future__ import annotations

import time
from typing import Any

from sync_pipeline.assets.apply.breaker import Breaker
from sync_pipeline.assets.apply.outcomes import (
    Outcomes,
    PlanRow,
    Result,
    UnsafeWriteError,
    chunks,
    is_transient,
    may_have_landed,
    parallel,
)
from sync_pipeline.model import Entity
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.systems import TripletexSystem, Written

#: How often one run sends a create that failed transiently: a Tripletex create refused
#: outright (``REFUSED_STATUSES``), a Svenn create under its Idempotency-Key.
UNKNOWN_CREATE_ATTEMPTS = 3

Item = tuple[PlanRow, dict[str, Any]]


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


class TripletexWrites:
    """One run's writes to Tripletex, settled through the run's :class:`Outcomes`."""

    def __init__(
        self,
        client: TripletexSystem,
        outcomes: Outcomes,
        breaker: Breaker,
        *,
        batch_size: int,
        workers: int,
        retry_wait_seconds: float,
    ) -> None:
        self.client = client
        self.outcomes = outcomes
        self.breaker = breaker
        self.batch_size = batch_size
        self.workers = workers
        self.retry_wait_seconds = retry_wait_seconds

    def write(self, entity: Entity, rows: list[PlanRow], kind: str) -> None:
        """Carry out ``rows`` (``kind`` 'create' or 'update'; a number assignment is an update)."""
        if not rows:
            return
        ready: list[Item] = [
            (row, self._with_version(entity, row, body) if kind == "update" else body)
            for row, body in self.outcomes.bodies(rows, "tripletex", True, check=guard)
        ]
        for chunk in chunks(ready, self.batch_size):
            if self.breaker.skip_if_down("tripletex", chunk):
                continue
            self.outcomes.intents([(r, b, None) for r, b in chunk])
            if kind == "create":
                results = self._create(entity, chunk)
            elif self.client.can_update_many(entity):
                results = self._update_many(entity, chunk)
            else:
                results = parallel(
                    chunk, lambda item: self._update_one(entity, *item), self.workers
                )
            self.breaker.observe("tripletex", results)
            self.outcomes.settle(results)

    def _with_version(self, entity: Entity, row: PlanRow, body: dict[str, Any]) -> dict[str, Any]:
        """The update body with its id and the version to lock on (G8): the one this run's
        last write returned, else the one the rules read."""
        body = dict(body)
        body["id"] = row.tripletex_id
        version = self.outcomes.tripletex_versions.get((entity, row.tripletex_id))  # type: ignore[arg-type]
        if version is None:
            version = row.expected_version
        if version is None and isinstance(row.payload, dict):
            version = row.payload.get("version")
        if version is not None:
            body["version"] = version
        return body

    # -- creates ----------------------------------------------------------------------------
    def _create(self, entity: Entity, items: list[Item], attempt: int = 1) -> list[Result]:
        try:
            created = self.client.create_many(entity, [body for _, body in items])
        except ApiError as err:
            if may_have_landed(err):
                # G5: Tripletex has no idempotency key and may commit the batch after this
                # answer (even after a lookup now), so nothing is sent again in this run;
                # the next run's recovery looks each record up by key before any create.
                return [self.outcomes.unknown(row, err) for row, _ in items]
            if is_transient(err):
                return self._refused_creates(entity, items, err, attempt)
            if len(items) > 1:
                mid = len(items) // 2
                return self._create(entity, items[:mid]) + self._create(entity, items[mid:])
            return [self.outcomes.failure(row, err) for row, _ in items]
        return [
            self.outcomes.created(row, "tripletex", written)
            for (row, _), written in zip(items, created, strict=True)
        ]

    def _refused_creates(
        self, entity: Entity, items: list[Item], err: ApiError, attempt: int
    ) -> list[Result]:
        """A create batch refused outright (429, 503) did nothing: send it again, but only
        the records a lookup by key does not find (in case the refusal was not one, G5)."""
        results: list[Result] = []
        again: list[Item] = []
        for row, body in items:
            try:
                found = self.client.find_by_key(entity, self.client.key_of(entity, body))
            except ApiError as lookup_err:
                results.append(self.outcomes.unknown(row, lookup_err))
                continue
            if found is not None:
                results.append(self.outcomes.created(row, "tripletex", found))
            else:
                again.append((row, body))
        if again and attempt < UNKNOWN_CREATE_ATTEMPTS:
            time.sleep(self.retry_wait_seconds * attempt)
            results += self._create(entity, again, attempt + 1)
        else:
            results += [self.outcomes.unknown(row, err) for row, _ in again]
        return results

    # -- updates ----------------------------------------------------------------------------
    def _update_many(self, entity: Entity, items: list[Item]) -> list[Result]:
        try:
            by_id = self.client.update_many(entity, [body for _, body in items])
        except ApiError as err:
            if len(items) > 1 and not is_transient(err):
                mid = len(items) // 2
                return self._update_many(entity, items[:mid]) + self._update_many(
                    entity, items[mid:]
                )
            return [self.outcomes.failure(row, err) for row, _ in items]
        return [self._updated(row, by_id.get(row.tripletex_id)) for row, _ in items]  # type: ignore[arg-type]

    def _update_one(self, entity: Entity, row: PlanRow, body: dict[str, Any]) -> Result:
        try:
            written = self.client.update_one(entity, row.tripletex_id, body)  # type: ignore[arg-type]
        except ApiError as err:
            return self.outcomes.failure(row, err)
        return self._updated(row, written)

    def _updated(self, row: PlanRow, written: Written | None) -> Result:
        version = written.version if written else None
        if version is not None:
            self.outcomes.tripletex_versions[(row.entity, row.tripletex_id)] = version  # type: ignore[index]
        return self.outcomes.updated(row, tripletex_version=version)

    # -- deletion proof ---------------------------------------------------------------------
    def deletion_proof(self, row: PlanRow) -> Result | None:
        """None when a GET by id proved the Tripletex record a deletion is derived from gone
        (404); otherwise the row's result: not confirmed (it still exists, G7: offset paging
        can miss a live record) or failed (the GET failed; nothing is deleted)."""
        if row.tripletex_id is None:
            return None
        try:  # the client already retries 429/5xx with backoff
            exists = self.client.exists(row.entity, row.tripletex_id)  # type: ignore[arg-type]
        except ApiError as err:
            return self.outcomes.failure(row, err)
        return self.outcomes.not_confirmed(row) if exists else None
