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
from sync_pipeline.resources.state import columns, staged_rows


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
            **columns(
                inserts,
                *("entity", "svenn_id", "tripletex_id", "key", "origin"),
                base=lambda w: _json(w.base),
                tv="tripletex_version",
                sv="svenn_version",
            ),
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


# -- operator decisions on link state (``sync-pipeline relink`` / ``repair-links``) ------------
class ReattachRefused(ValueError):
    """``relink`` cannot re-attach the link; the message says why (one line)."""


def reattach(
    conn: duckdb.DuckDBPyConnection, tenant: str, entity: str, side: Side, record_id: int
) -> tuple[int | None, int | None]:
    """C6: make the detached link of ``side``'s record active again, inside the caller's
    transaction, with an unknown base (the next merge treats every field as changed). Refused
    when the record is linked already, or its counterpart has another active link (G13).
    Returns the link's (svenn_id, tripletex_id)."""
    column = {"svenn": "svenn_id", "tripletex": "tripletex_id"}[side]
    links = conn.execute(
        f"SELECT svenn_id, tripletex_id, state FROM sync.links "
        f"WHERE tenant = ? AND entity = ? AND {column} = ?",
        [tenant, entity, record_id],
    ).fetchall()
    if any(state == "active" for _, _, state in links):
        raise ReattachRefused(f"the {entity} with {side} id {record_id} is linked already")
    detached = [(s, t) for s, t, state in links if state == "detached"]
    if not detached:
        raise ReattachRefused(
            f"tenant '{tenant}': no detached {entity} link with {side} id {record_id}"
        )
    svenn_id, tripletex_id = detached[0]
    clash = conn.execute(
        "SELECT 1 FROM sync.links WHERE tenant = ? AND entity = ? AND state = 'active' "
        "AND (svenn_id = ? OR tripletex_id = ?)",
        [tenant, entity, svenn_id, tripletex_id],
    ).fetchall()
    if clash:
        raise ReattachRefused(
            f"cannot re-attach: the other record is linked to another {entity} already"
        )
    conn.execute(
        f"UPDATE sync.links SET state = 'active', base = NULL "
        f"WHERE tenant = ? AND entity = ? AND {column} = ? AND state = 'detached'",
        [tenant, entity, record_id],
    )
    return svenn_id, tripletex_id


def g13_duplicate_links_sql() -> str:
    """Active links sharing a Svenn or Tripletex id with another active link of their entity,
    and whether their records' keys still match in staging (both live, equal G3 key; for
    employees also the same e-mail)."""
    from sync_pipeline.assets.rules.eligibility import key_sql
    from sync_pipeline.model import ENTITIES, staging_table

    def match(entity: str) -> str:
        keys = f"{key_sql(entity, 's.number')} = {key_sql(entity, 't.number')}"  # type: ignore[arg-type]
        if entity == "employee":
            keys += " OR nullif(lower(trim(s.email)), '') = lower(trim(t.email))"
        return f"coalesce(NOT s.deleted AND NOT t.deleted AND ({keys}), false)"

    per_entity = " UNION ALL ".join(
        f"""SELECT d.rid, {match(e)} AS keys_match FROM dup d
            LEFT JOIN {staging_table("svenn", e)} s ON s.tenant = $tenant AND s.id = d.svenn_id
            LEFT JOIN {staging_table("tripletex", e)} t
              ON t.tenant = $tenant AND t.id = d.tripletex_id
            WHERE d.entity = '{e}'"""
        for e in ENTITIES
    )
    return f"""
    WITH active AS (
      SELECT rowid AS rid, entity, svenn_id, tripletex_id, linked_at, last_synced_at
      FROM sync.links WHERE tenant = $tenant AND state = 'active'
        AND NOT list_contains($copies, rowid)   -- exact copies of a pair count once
    ),
    dup AS (
      SELECT * FROM active a WHERE EXISTS (
        SELECT 1 FROM active b WHERE b.entity = a.entity AND b.rid <> a.rid
          AND (b.svenn_id = a.svenn_id OR b.tripletex_id = a.tripletex_id))
    )
    SELECT d.*, m.keys_match FROM dup d JOIN ({per_entity}) m USING (rid)
    """


def g13_keep_sql() -> str:
    """Of the duplicates (``_dup``), the links kept: keys matching, one per Svenn id, then one
    per Tripletex id (the most recently synced, then the oldest); all others are detached."""
    return """
    WITH per_svenn AS (
      SELECT *, row_number() OVER (
        PARTITION BY entity, svenn_id IS NULL, coalesce(svenn_id, rid)
        ORDER BY last_synced_at DESC NULLS LAST, linked_at, rid) AS n
      FROM _dup WHERE keys_match
    ),
    per_tripletex AS (
      SELECT *, row_number() OVER (
        PARTITION BY entity, tripletex_id IS NULL, coalesce(tripletex_id, rid)
        ORDER BY last_synced_at DESC NULLS LAST, linked_at, rid) AS n2
      FROM per_svenn WHERE n = 1
    )
    SELECT rid FROM per_tripletex WHERE n2 = 1
    """


#: Why repair-links detached a link (``sync.link_detachments``, LINK_DETACHED, G13).
REPAIR_REASON = "duplicate active link detached by repair-links"


@dataclass
class DuplicateRepair:
    """What ``repair_duplicate_links`` found (and, unless a dry run, did)."""

    copies: int  # exact copies of a pair, merged into one link
    #: The links sharing an id: entity, svenn_id, tripletex_id, keys_match, action
    #: ('keep' | 'detach').
    pairs: list[dict[str, Any]]

    @property
    def detached(self) -> list[dict[str, Any]]:
        return [p for p in self.pairs if p["action"] == "detach"]


def repair_duplicate_links(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, *, dry_run: bool
) -> DuplicateRepair:
    """G13, inside the caller's transaction: merge exact copies of one active pair into one
    link; of differing active pairs sharing an id, keep the one whose keys still match on
    both sides and detach every other (with its ``sync.link_detachments`` row, ``run_id``
    naming the repair). ``dry_run`` only reports."""
    copies = [
        rid
        for (rid,) in conn.execute(
            """SELECT rowid FROM sync.links
               WHERE tenant = ? AND state = 'active'
                 AND svenn_id IS NOT NULL AND tripletex_id IS NOT NULL
               QUALIFY row_number() OVER (PARTITION BY entity, svenn_id, tripletex_id
                 ORDER BY last_synced_at DESC NULLS LAST, linked_at, rowid) > 1""",
            [tenant],
        ).fetchall()
    ]
    if copies and not dry_run:
        conn.execute(
            "DELETE FROM sync.links WHERE tenant = ? AND rowid IN (SELECT unnest(?))",
            [tenant, copies],
        )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _dup AS {g13_duplicate_links_sql()}",
        {"tenant": tenant, "copies": copies},
    )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _keep AS {g13_keep_sql()}")
    cur = conn.execute(
        """SELECT d.entity, d.svenn_id, d.tripletex_id, d.keys_match,
                  CASE WHEN k.rid IS NULL THEN 'detach' ELSE 'keep' END AS action
           FROM _dup d LEFT JOIN _keep k USING (rid)
           ORDER BY d.entity, d.svenn_id, d.tripletex_id"""
    )
    names = [d[0] for d in cur.description]
    repair = DuplicateRepair(
        len(copies), [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    )
    if repair.detached and not dry_run:
        dropped = "(SELECT rid FROM _dup ANTI JOIN _keep USING (rid))"
        conn.execute(
            "INSERT INTO sync.link_detachments (tenant, entity, svenn_id, tripletex_id, "
            "rule_id, reason, run_id, detached_at) SELECT tenant, entity, svenn_id, "
            f"tripletex_id, 'G13', ?, ?, now() FROM sync.links WHERE tenant = ? AND rowid IN "
            f"{dropped}",
            [REPAIR_REASON, run_id, tenant],
        )
        conn.execute(
            f"UPDATE sync.links SET state = 'detached' WHERE tenant = ? AND rowid IN {dropped}",
            [tenant],
        )
    return repair
