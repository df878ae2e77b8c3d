"""Settle the creates an earlier run left without outcome, before this run writes (G4, G5).

A create whose intent was logged but whose answer never arrived (the process was
killed, the API timed out) may or may not have landed. Creates always send the
key, so the record is looked up by it: found → linked with the base the crashed
run planned (the values it sent); not found → marked failed, and the rules plan
it again. This run's plan was computed before recovery, so the
executor skips a create whose source record recovery has just linked.

Only intents of runs that are over are adopted: a run that still holds the tenant's
live lease (G13) may yet settle its own writes, so its intents are left alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sync_pipeline.assets.apply import wal
from sync_pipeline.assets.apply.error_log import Finding, insert_findings
from sync_pipeline.assets.apply.links import (
    LinkIndex,
    LinkWrite,
    UnresolvedRefError,
    resolve_refs,
    write_links,
)
from sync_pipeline.assets.apply.outcomes import Connect
from sync_pipeline.assets.apply.sql import first
from sync_pipeline.model import CODES
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.systems import SvennSystem, TripletexSystem, Written

#: Svenn is searched from a little before the intent (clock skew between the two hosts).
SVENN_SEARCH_MARGIN = timedelta(minutes=10)


def _planned_base(conn: Any, tenant: str, op: wal.UnknownCreate, index: LinkIndex) -> Any:
    """The base the crashed run planned for the record (what it sent), refs resolved now."""
    row = first(
        conn.execute(
            "SELECT base_after FROM sync.plan WHERE tenant = ? AND run_id = ? AND seq = ?",
            [tenant, op.run_id, op.seq],
        )
    )
    if not row or row[0] is None:
        return None
    try:
        return resolve_refs(json.loads(row[0]), index, "tripletex", False)
    except UnresolvedRefError:
        return None  # unknown base: the next merge compares the two sides field by field


def _refused(
    tenant: str, run_id: str, op: wal.UnknownCreate, ids: tuple[Any, Any], found: Written
) -> Finding:
    spec = CODES["LINK_REFUSED"]
    details = {"rule_id": spec.rule_id, "recovered_from_run": op.run_id, "result_id": found.id}
    return Finding(
        tenant, run_id, op.entity, op.target, ids[0], ids[1], op.key, spec.code, spec.severity,
        spec.rule_id, spec.message, details,
    )  # fmt: skip


def recover(
    *,
    tenant: str,
    run_id: str,
    connect: Connect,
    tripletex: TripletexSystem,
    svenn: SvennSystem,
    log: Any,
) -> dict[str, int]:
    """Look up every unsettled create of earlier runs; returns counts by result."""
    counts: dict[str, int] = defaultdict(int)
    with connect() as conn:
        pending = wal.unknown_creates(conn, tenant, run_id)
        index = LinkIndex.load(conn, tenant)
        abandoned = wal.abandon_other_intents(conn, tenant, run_id)
    if abandoned:
        counts["other_writes_closed"] = abandoned
    svenn_cache: dict[str, dict[str, list[Written]]] = {}
    for op in pending:
        found: Written | None
        try:
            if op.target == "tripletex":
                found = tripletex.find_by_key(op.entity, op.key)  # type: ignore[arg-type]
            else:
                if op.entity not in svenn_cache:
                    since = min(p.started_at for p in pending if p.entity == op.entity)
                    svenn_cache[op.entity] = svenn.live_by_key(
                        op.entity,  # type: ignore[arg-type]
                        since - SVENN_SEARCH_MARGIN,
                    )
                hits = svenn_cache[op.entity].get(str(op.key or "").strip(), [])
                found = hits[0] if len(hits) == 1 else None
        except ApiError as err:
            log.warning(f"recovery of {op.entity} create {op.key!r} postponed: {err}")
            counts["postponed"] += 1
            continue
        source_side = "svenn" if op.target == "tripletex" else "tripletex"
        source_id = op.svenn_id if source_side == "svenn" else op.tripletex_id
        with connect() as conn:

            def settle(
                state: str,
                result_id: int | None,
                note: str,
                run: str = op.run_id,
                seq: int = op.seq,
            ) -> None:
                wal.settle_earlier(conn, tenant, run, seq, state, result_id, {"recovery": note})

            with transaction(conn):
                if found is None:
                    settle("failed", None, "not found by key; the rules plan it again")
                    counts["not_found"] += 1
                elif index.is_linked(op.entity, source_side, source_id) or index.is_linked(
                    op.entity, op.target, found.id
                ):
                    settle("done", found.id, "found by key; already linked")
                    counts["already_linked"] += 1
                else:
                    ids = (
                        (source_id, found.id) if op.target == "tripletex" else (found.id, source_id)
                    )
                    link = LinkWrite(
                        "insert",
                        op.entity,
                        ids[0],
                        ids[1],
                        key=op.key,
                        origin=source_side,
                        base=_planned_base(conn, tenant, op, index),
                    )
                    if write_links(conn, tenant, [link]):  # G13: an id got linked meanwhile
                        settle(
                            "skipped",
                            found.id,
                            "found by key; link refused: an id is linked already",
                        )
                        insert_findings(conn, [_refused(tenant, run_id, op, ids, found)])
                        counts["link_refused"] += 1
                    else:
                        index.add(op.entity, *ids)
                        settle("done", found.id, "found by key and linked")
                        counts["linked"] += 1
    return dict(counts)
