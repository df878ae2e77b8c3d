"""Targeted incremental extraction: a run started by webhook events reads the changed records
by id instead of listing whole collections (the Tripletex extract does, see
``assets/extract/tripletex.py``; Svenn's ``updated_since`` incremental is already cheap).

Tripletex has no ``changedSince`` on projects and employees (API-NOTES 3.7), so without an
event the only way to learn what changed is a full listing (cheap with 304s, but one
request per page). An event names the record: a lookup by id reads its current state —
whatever the event said, since events can be out of order, skipped or stale (API-NOTES
8.6: "the latest is sent", versions may be skipped).

G7 holds: a webhook alone never deletes. A deletion event only makes the record a
candidate; it counts as gone when the lookup by id does not return it, like a record
missing from a complete listing, which the apply step proves with a GET by id before it
writes or detaches anything. A record the lookup still finds is read as alive (an update), and
reported in ``deletion_not_confirmed`` so the run can say so (info ``DELETION_NOT_CONFIRMED``,
as the apply step does for a deletion derived from a Tripletex listing).

Used by the Tripletex extract (``assets/extract/tripletex.py``): with the run tag
``WEBHOOK_BATCH_TAG`` set, :func:`changes_of_batch` once per run, then per entity that
would be extracted incrementally :func:`read_tripletex`, whose ``records`` replace their
rows in the snapshot by id and whose ``gone`` leave it (``snapshot.write_snapshot``,
``replace="by_id"``); without the tag, or with more than ``MAX_TARGETED`` records, it lists
as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from sync_pipeline.model import Entity
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.systems import SyncedSystem
from sync_pipeline.resources.tripletex import TripletexClient

#: Above this many changed records of one entity, listing the collection is cheaper.
MAX_TARGETED = 200


@dataclass
class Changes:
    """The records a batch of events named, per (system, entity)."""

    ids: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    #: ids whose events include a deletion (a candidate, not a fact: G7).
    deletions: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))

    def of(self, system: str, entity: str) -> list[int]:
        return sorted(self.ids.get((system, entity), ()))

    def too_many(self, system: str, entity: str) -> bool:
        return len(self.ids.get((system, entity), ())) > MAX_TARGETED


@dataclass
class TargetedRead:
    system: str
    entity: str
    records: list[dict[str, Any]] = field(default_factory=list)  # alive now, as the API has them
    gone: list[int] = field(default_factory=list)  # a GET by id answered 404
    deletion_not_confirmed: list[int] = field(default_factory=list)  # deletion event, yet alive
    requests: int = 0


def changes_of_batch(conn: duckdb.DuckDBPyConnection, tenant: str, batch: str) -> Changes:
    """The changed records of the events the run's batch covers (the sensor's tag)."""
    rows = conn.execute(
        "SELECT source, entity, record_id, bool_or(action = 'delete')"
        " FROM sync.webhook_events WHERE tenant = ? AND batch = ? GROUP BY ALL",
        [tenant, batch],
    ).fetchall()
    changes = Changes()
    for source, entity, record_id, deleted in rows:
        changes.ids[(source, entity)].add(record_id)
        if deleted:
            changes.deletions[(source, entity)].add(record_id)
    return changes


def read_by_id(
    client: SyncedSystem,
    system: str,
    entity: Entity,
    ids: Iterable[int],
    *,
    deletions: Iterable[int] = (),
    **options: Any,
) -> TargetedRead:
    """The records with these ids through the client's own lookup (``get_many``: Tripletex
    lists with an ``id`` filter, in every pass; Svenn GETs each id, tombstones included).

    An id the lookup does not return is ``gone``, exactly as if it were missing from a
    complete listing (the apply step proves it with its GET by id before anything is
    written or detached, G7). A deletion event whose record is still alive is reported."""
    wanted = sorted({int(i) for i in ids})
    out = TargetedRead(system, entity)
    if not wanted:
        return out
    before = client.requests_made
    # Any API error propagates: the extract fails as incomplete and deletes nothing (G7).
    out.records = client.get_many(entity, wanted, **options)
    out.requests = client.requests_made - before
    found = {int(r["id"]) for r in out.records}
    alive = {int(r["id"]) for r in out.records if not r.get("deleted_at")}
    out.gone = [i for i in wanted if i not in found]
    out.deletion_not_confirmed = sorted(alive & set(deletions))
    return out


def read_tripletex(
    client: TripletexClient,
    entity: Entity,
    ids: Iterable[int],
    *,
    fields: str | None = None,
    deletions: Iterable[int] = (),
) -> TargetedRead:
    """Tripletex records by id with the extract's ``fields``."""
    return read_by_id(client, "tripletex", entity, ids, deletions=deletions, fields=fields)


def read_svenn(
    client: SvennClient, entity: Entity, ids: Iterable[int], *, deletions: Iterable[int] = ()
) -> TargetedRead:
    """Svenn records by id; a deleted one is its tombstone (``deleted_at`` set), not gone."""
    return read_by_id(client, "svenn", entity, ids, deletions=deletions)
