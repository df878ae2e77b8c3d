"""Link state transitions (``sync.links``) and the ``$ref`` placeholders that point through them.

A link is born ``active`` by a create (origin = the side the record came from), by a
key match (origin ``matched``) or by crash recovery; it is ``detached`` by P8/P9/C6/C7/E4,
always with a ``sync.link_detachments`` row saying which rule and why (G13).
Its ``base`` is what both systems agreed on after the last successful write (G2, G6);
``NULL`` means unknown: the next merge then treats every field as changed on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb

from sync_pipeline.assets.apply.sql import first
from sync_pipeline.model import Side
from sync_pipeline.resources.state import staged_rows


class UnresolvedRefError(LookupError):
    """A ``$ref`` names a record that has no active link (its own create failed)."""

    def __init__(self, entity: str, spec: dict[str, Any]) -> None:
        self.entity = entity
        self.spec = spec
        super().__init__(f"no active {entity} link for {spec}")


class LinkIndex:
    """The tenant's active links in memory, kept current by the executor as it writes."""

    def __init__(self, rows: Iterable[tuple[str, int | None, int | None]] = ()) -> None:
        self._tripletex_of: dict[tuple[str, int], int] = {}
        self._svenn_of: dict[tuple[str, int], int] = {}
        for entity, svenn_id, tripletex_id in rows:
            self.add(entity, svenn_id, tripletex_id)

    @classmethod
    def load(cls, conn: duckdb.DuckDBPyConnection, tenant: str) -> LinkIndex:
        rows = conn.execute(
            "SELECT entity, svenn_id, tripletex_id FROM sync.links "
            "WHERE tenant = ? AND state = 'active'",
            [tenant],
        ).fetchall()
        return cls(rows)

    def add(self, entity: str, svenn_id: int | None, tripletex_id: int | None) -> None:
        if svenn_id is not None and tripletex_id is not None:
            self._tripletex_of[(entity, int(svenn_id))] = int(tripletex_id)
            self._svenn_of[(entity, int(tripletex_id))] = int(svenn_id)

    def remove(self, entity: str, svenn_id: int | None, tripletex_id: int | None) -> None:
        if svenn_id is not None:
            self._tripletex_of.pop((entity, int(svenn_id)), None)
        if tripletex_id is not None:
            self._svenn_of.pop((entity, int(tripletex_id)), None)

    def tripletex_of(self, entity: str, svenn_id: int) -> int | None:
        return self._tripletex_of.get((entity, int(svenn_id)))

    def svenn_of(self, entity: str, tripletex_id: int) -> int | None:
        return self._svenn_of.get((entity, int(tripletex_id)))

    def is_linked(self, entity: str, side: Side, record_id: int | None) -> bool:
        if record_id is None:
            return False
        table = self._tripletex_of if side == "svenn" else self._svenn_of
        return (entity, int(record_id)) in table

    def counterpart(self, entity: str, spec: dict[str, Any], want: Side) -> int | None:
        """The ``want`` side's id of the record a ``$ref`` names (by either side's id)."""
        given_svenn, given_tripletex = spec.get("svenn_id"), spec.get("tripletex_id")
        if want == "svenn":
            if given_svenn is not None:
                return int(given_svenn)
            return self.svenn_of(entity, given_tripletex) if given_tripletex is not None else None
        if given_tripletex is not None:
            return int(given_tripletex)
        return self.tripletex_of(entity, given_svenn) if given_svenn is not None else None


def resolve_refs(value: Any, index: LinkIndex, want: Side, wrap: bool) -> Any:
    """Replace every ``{"$ref": {...}}`` in ``value`` by the ``want`` side's id.

    ``wrap`` gives Tripletex's ``{"id": n}`` reference object; otherwise the bare id
    (Svenn bodies and the canonical base, whose refs hold Tripletex ids).
    """
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], dict):
            spec = value["$ref"]
            entity = str(spec.get("entity"))
            found = index.counterpart(entity, spec, want)
            if found is None:
                raise UnresolvedRefError(entity, spec)
            return {"id": found} if wrap else found
        return {k: resolve_refs(v, index, want, wrap) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, index, want, wrap) for v in value]
    return value


@dataclass
class LinkWrite:
    """One change to ``sync.links`` decided by an operation's outcome."""

    action: str  # 'insert' | 'base' | 'merge_base' | 'underlay_base' | 'versions' | 'detach'
    entity: str
    svenn_id: int | None
    tripletex_id: int | None
    key: str | None = None
    origin: str | None = None
    base: dict[str, Any] | None = None
    tripletex_version: int | None = None
    svenn_version: int | None = None
    #: For ``detach``: the rule that detached the link, why, and the run (G13).
    rule_id: str | None = None
    reason: str | None = None
    run_id: str | None = None


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def g13_refused_inserts_sql(inserts: str) -> str:
    """G13: the new links (rows of the view ``inserts``) whose Svenn or Tripletex id already
    has an active link of the entity (in the store or earlier in the same batch). DuckDB has
    no partial unique index, so the insert is guarded by this query inside the caller's
    transaction."""
    return f"""
    SELECT i._i FROM {inserts} AS i
    WHERE EXISTS (
        SELECT 1 FROM sync.links AS l
        WHERE l.tenant = $tenant AND l.entity = i.entity AND l.state = 'active'
          AND (l.svenn_id = i.svenn_id OR l.tripletex_id = i.tripletex_id))
       OR EXISTS (
        SELECT 1 FROM {inserts} AS o
        WHERE o._i < i._i AND o.entity = i.entity
          AND (o.svenn_id = i.svenn_id OR o.tripletex_id = i.tripletex_id))
    """


def write_links(
    conn: duckdb.DuckDBPyConnection, tenant: str, writes: list[LinkWrite]
) -> list[LinkWrite]:
    """Apply link changes inside the caller's transaction (the WAL outcome's, G5).

    Returns the inserts refused because an id of theirs is already actively linked
    (G13: never two active links for one record); the caller records them, the rest is
    written."""
    inserts = [w for w in writes if w.action == "insert"]
    refused: list[LinkWrite] = []
    if inserts:
        rows = {
            "_i": list(range(len(inserts))),
            "entity": [w.entity for w in inserts],
            "svenn_id": [w.svenn_id for w in inserts],
            "tripletex_id": [w.tripletex_id for w in inserts],
            "key": [w.key for w in inserts],
            "origin": [w.origin for w in inserts],
            "base": [_json(w.base) for w in inserts],
            "tv": [w.tripletex_version for w in inserts],
            "sv": [w.svenn_version for w in inserts],
        }
        with staged_rows(conn, rows) as staged:
            refused_ix = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT _i FROM ({g13_refused_inserts_sql(staged)}) ORDER BY _i",
                    {"tenant": tenant},
                ).fetchall()
            ]
            refused = [inserts[i] for i in refused_ix]
            conn.execute(
                "INSERT INTO sync.links (tenant, entity, svenn_id, tripletex_id, key, origin, "
                "state, base, tripletex_version, svenn_version, linked_at, last_synced_at) "
                "SELECT ?, entity, svenn_id, tripletex_id, key, origin, 'active', "
                "CAST(base AS JSON), tv, sv, now(), "
                f"CASE WHEN base IS NULL THEN NULL ELSE now() END FROM {staged} "
                "WHERE NOT list_contains(?, _i)",
                [tenant, refused_ix],
            )
    for w in writes:
        where = (
            "tenant = ? AND entity = ? AND state = 'active' AND svenn_id = ? AND tripletex_id = ?"
        )
        ids = [tenant, w.entity, w.svenn_id, w.tripletex_id]
        if w.action == "base":
            conn.execute(
                "UPDATE sync.links SET base = CAST(? AS JSON), last_synced_at = "
                "CASE WHEN ? IS NULL THEN last_synced_at ELSE now() END, "
                "tripletex_version = coalesce(?, tripletex_version), "
                f"svenn_version = coalesce(?, svenn_version) WHERE {where}",
                [_json(w.base), _json(w.base), w.tripletex_version, w.svenn_version, *ids],
            )
        elif w.action in ("merge_base", "underlay_base"):
            # merge: the written fields win; underlay: fields already merged this run win.
            # A NULL base starts empty: a missing field reads as NULL, like an unknown one.
            row = first(conn.execute(f"SELECT base FROM sync.links WHERE {where}", ids))
            current = json.loads(row[0]) if row and row[0] is not None else {}
            if w.action == "merge_base":
                merged = {**current, **(w.base or {})}
            else:
                merged = {**(w.base or {}), **current}
            conn.execute(
                "UPDATE sync.links SET base = CAST(? AS JSON), "
                "tripletex_version = coalesce(?, tripletex_version), "
                f"svenn_version = coalesce(?, svenn_version) WHERE {where}",
                [_json(merged), w.tripletex_version, w.svenn_version, *ids],
            )
        elif w.action == "versions":
            conn.execute(
                "UPDATE sync.links SET tripletex_version = coalesce(?, tripletex_version), "
                f"svenn_version = coalesce(?, svenn_version) WHERE {where}",
                [w.tripletex_version, w.svenn_version, *ids],
            )
        elif w.action == "detach":
            active = (
                "tenant = ? AND entity = ? AND state = 'active' "
                "AND (svenn_id = ? OR tripletex_id = ?)"
            )
            conn.execute(
                "INSERT INTO sync.link_detachments (tenant, entity, svenn_id, tripletex_id, "
                "rule_id, reason, run_id, detached_at) SELECT tenant, entity, svenn_id, "
                f"tripletex_id, ?, ?, ?, now() FROM sync.links WHERE {active}",
                [w.rule_id, w.reason, w.run_id, *ids],
            )
            conn.execute(f"UPDATE sync.links SET state = 'detached' WHERE {active}", ids)
        elif w.action != "insert":
            raise ValueError(f"unknown link action {w.action!r}")
    return refused


def apply_to_index(index: LinkIndex, writes: list[LinkWrite]) -> None:
    """Mirror committed link changes in the in-memory index."""
    for w in writes:
        if w.action == "insert":
            index.add(w.entity, w.svenn_id, w.tripletex_id)
        elif w.action == "detach":
            index.remove(w.entity, w.svenn_id, w.tripletex_id)
