"""Svenn extraction: cursor listings with tombstones, incremental by ``updated_since``.

Full: every record of the resource with ``include_deleted=true``; the snapshot is replaced.
Incremental: records with ``updated_at >= watermark - SVENN_WATERMARK_OVERLAP`` (deleted
ones included, as tombstones), upserted by id into the previous snapshot. Svenn deletes
softly (``deleted_at`` set, ``updated_at`` bumped), so an incremental extract sees every
deletion as a tombstone; nothing is inferred from absence. A page without its envelope
(``data``, ``next_cursor``) or with a record without an id fails the extract as incomplete
(G7), never read as the end of the listing.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa

from sync_pipeline.assets.extract.outputs import (
    ClientTuning,
    SideExtract,
    fail_incomplete,
    timed,
    wants_full_extract,
)
from sync_pipeline.assets.extract.snapshot import (
    ExtractRecord,
    choose_mode,
    json_rows,
    previous_extract,
    write_snapshot,
)
from sync_pipeline.model import PLURAL, Entity
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.svenn import SvennClient, format_timestamp
from sync_pipeline.tenants import TenantsResource

#: How far an incremental extract reaches back before the newest ``updated_at`` it saw:
#: covers records committed late with an earlier timestamp.
SVENN_WATERMARK_OVERLAP = timedelta(minutes=5)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fetch(
    client: SvennClient, entity: Entity, updated_since: datetime | None
) -> tuple[list[str], datetime | None]:
    """Every page of the listing as JSON rows, and the newest ``updated_at`` among them."""
    rows: list[str] = []
    newest: datetime | None = None
    for page in client.iter_changed(entity, updated_since):
        rows.extend(json_rows(page))
        page_newest = max(
            (t for t in (_parse_time(r.get("updated_at")) for r in page) if t), default=None
        )
        if page_newest and (newest is None or page_newest > newest):
            newest = page_newest
    return rows, newest


def extract_entity(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    client: SvennClient,
    entity: Entity,
) -> dict[str, Any]:
    """Extract one entity; returns the metadata common to its two assets."""
    tenant = context.partition_key
    now = datetime.now(UTC)
    with duckdb.get_connection() as conn:
        previous = previous_extract(conn, tenant, "svenn", entity)
    mode, why = choose_mode(previous, force_full=wants_full_extract(context), now=now)
    since = None
    if mode == "incremental":
        since = _parse_time(previous.watermark.get("max_updated_at")) if previous else None
        if since is None:
            mode, why = "full", "previous watermark unreadable"
        else:
            since -= SVENN_WATERMARK_OVERLAP
    rec = ExtractRecord(tenant, "svenn", entity, context.run.run_id, mode, now)
    before = client.requests_made
    with timed() as clock:
        try:
            rows, newest = fetch(client, entity, since)
        except ApiError as err:
            fail_incomplete(duckdb, rec, client.requests_made - before, err)
        rec.requests = client.requests_made - before
        previous_max = (
            _parse_time((previous.watermark or {}).get("max_updated_at"))
            if (previous and mode == "incremental")
            else None
        )
        newest = max((t for t in (newest, previous_max) if t), default=None)
        rec.watermark = {"max_updated_at": format_timestamp(newest) if newest else None}
        if since is not None:
            rec.watermark["updated_since"] = format_timestamp(since)
        table = pa.table({"raw_json": pa.array(rows, pa.string())})
        with duckdb.get_connection() as conn:
            row_count = write_snapshot(conn, rec, table, replace="all" if mode == "full" else "ids")
    context.log.info(
        f"Svenn {PLURAL[entity]}: {mode} extract ({why}), {len(rows)} records fetched, "
        f"{row_count} in snapshot, {rec.requests} requests"
    )
    return {
        "dagster/row_count": row_count,
        "mode": mode,
        "mode_reason": why,
        "complete": True,
        "records_fetched": len(rows),
        "requests": rec.requests,
        "duration_s": round(clock["seconds"], 3),
        "watermark": rec.watermark.get("max_updated_at") or "",
    }


NOTES: dict[Entity, str] = {
    "project": "Tombstones included (deleted_at set).",
    "customer": "Tombstones and inactive customers included.",
    "employee": "Tombstones and inactive employees included.",
}


def svenn_side(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    tenants: TenantsResource,
    tuning: ClientTuning,
) -> SideExtract:
    """Svenn for the ``extract`` step."""
    return SideExtract(
        "svenn",
        extract_entity,
        lambda: tenants.svenn_client(context.partition_key, **tuning.client_overrides()),
    )
