"""What the sync asks of each system, in its own words: entities, ids and keys.

The apply step (executor, recovery) and the targeted extractions depend on these protocols,
not on a client class: the paths, key fields, list filters and quirks of each API (which
entities have ``PUT /list``, customers listed in an active and an inactive pass, Svenn's
tombstones) live in that system's client alone (``tripletex.py``, ``svenn.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sync_pipeline.model import Entity

if TYPE_CHECKING:
    from sync_pipeline.resources.svenn import BulkResult

#: One record as the API represents it (what the extract stores as raw JSON).
Record = dict[str, Any]


@dataclass(frozen=True)
class Written:
    """What a write or a lookup by key tells the sync about one record: its id, its new
    version (None when the answer had none) and its key as the API holds it."""

    id: int
    version: int | None = None
    key: str | None = None

    @classmethod
    def of(cls, record: Any, key_field: str | None = None) -> Written | None:
        """The record's id, version and key; None when the answer holds no record (an
        empty body, a record without id)."""
        if not isinstance(record, dict) or record.get("id") is None:
            return None
        key = record.get(key_field) if key_field else None
        return cls(
            int(record["id"]),
            record.get("version"),
            str(key).strip() if key not in (None, "") else None,
        )


class SyncedSystem(Protocol):
    """What both systems offer the sync."""

    @property
    def requests_made(self) -> int: ...

    def key_of(self, entity: Entity, record: Mapping[str, Any]) -> str | None:
        """The record's key (number) as this API names it, trimmed; None when empty."""
        ...

    def get_many(self, entity: Entity, ids: Iterable[int]) -> list[Record]:
        """The records with these ids that exist (one lookup, not a listing)."""
        ...

    def close(self) -> None: ...


class TripletexSystem(SyncedSystem, Protocol):
    """Tripletex: batch creates and updates, lookups by key; it deletes for real."""

    def exists(self, entity: Entity, id: int) -> bool:
        """False only when a GET by id answers 404: the proof a deletion needs (G7)."""
        ...

    def find_by_key(self, entity: Entity, key: Any) -> Written | None:
        """The one record with this key (inactive ones too); None when none or ambiguous."""
        ...

    def create_many(
        self, entity: Entity, bodies: Sequence[Mapping[str, Any]]
    ) -> list[Written | None]:
        """Create in one batch; each body's record in request order (None: not in the answer)."""
        ...

    def can_update_many(self, entity: Entity) -> bool:
        """Whether the entity has a batch update; without one, ``update_one`` per record."""
        ...

    def update_many(
        self, entity: Entity, bodies: Sequence[Mapping[str, Any]]
    ) -> dict[int, Written]:
        """Update in one batch (each body carries id and version); the answer by id."""
        ...

    def update_one(self, entity: Entity, id: int, body: Mapping[str, Any]) -> Written | None: ...


class SvennSystem(SyncedSystem, Protocol):
    """Svenn: bulk writes with per-operation results; it deletes softly (tombstones)."""

    def list_changed(
        self, entity: Entity, since: datetime | str | None, *, include_deleted: bool = True
    ) -> list[Record]:
        """Records changed since ``since`` (every record when None), tombstones included."""
        ...

    def live_by_key(self, entity: Entity, since: datetime) -> dict[str, list[Written]]:
        """Live records changed since ``since``, by key: where a lost create would be."""
        ...

    def write_many(
        self, entity: Entity, operations: Sequence[Mapping[str, Any]]
    ) -> list[BulkResult]:
        """One bulk of ``create_op``/``update_op``/``delete_op``; a result per operation."""
        ...
