"""Tripletex extraction: paged listings with checksums, so an unchanged page costs a 304.

Listings (each paged by ``from``/``count``, sorted by id, until a short page, asking only
for the fields the sync uses): ``/employee``; ``/customer`` twice, ``isInactive=false`` and
``isInactive=true`` (the API hides inactive customers by default, and a forgotten one would
look deleted); ``/project`` with participants' employee ids, ``isInternal``, ``isOffer``
(P13: offers are listed and recognised, not filtered out, or a project that becomes an
offer would look deleted) and ``mainProject`` in the same listing, so no per-project calls. With the employees, when not
known yet and on every full extract: ``>whoAmI`` and ``/employee?assignableProjectManagers=true``
(ids only) into ``staging.tripletex_project_managers`` — who may manage projects (P10).

Every page is fetched with ``If-None-Match``: a probe value on a full extract, the page's
stored ``versionDigest`` on an incremental one. A 304 keeps that page's stored rows as they
are; a changed page is taken as fetched and paging goes on, so a deletion (which shifts the
later pages and changes their digests) is seen in both modes as a record missing from a
complete listing. Tripletex has no updated-since filter for projects and employees, so an
incremental extract still asks for every page, just cheaply.

Known limit of offset paging: a record deleted in Tripletex *while* a multi-page listing
is being read shifts the later pages by one, so one live record can be missed in that
run (an insertion instead shows a record twice, which staging de-duplicates). The apply
step therefore proves every deletion derived from a listing with a GET by id before it
writes or detaches anything (P9, C7, E4), so such a record only misses one run's changes.
A page without its envelope (``values``, ``fullResultSize``) or with a record without an
id fails the extract as incomplete (G7): it is never read as an empty page.

A run started by webhook events (tag ``WEBHOOK_BATCH_TAG``) that would extract an entity
incrementally reads only the records its events named, by id (``mode = 'targeted'``; at
most ``targeted.MAX_TARGETED`` of them, else it lists), and merges them into the stored
snapshot (``snapshot.py``). A named record the lookup does not return is dropped like one
missing from a complete listing; a deletion event for a record still there deletes
nothing and is reported (DELETION_NOT_CONFIRMED).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import dagster as dg
import pyarrow as pa
from duckdb import DuckDBPyConnection

from sync_pipeline.assets.apply.error_log import Finding, insert_findings
from sync_pipeline.assets.extract.outputs import (
    ClientTuning,
    SideExtract,
    fail_incomplete,
    timed,
    wants_full_extract,
)
from sync_pipeline.assets.extract.snapshot import (
    EXTRACT_FINDING,
    ExtractRecord,
    PreviousExtract,
    choose_mode,
    json_rows,
    previous_extract,
    write_snapshot,
)
from sync_pipeline.model import CODES, PLURAL, Entity
from sync_pipeline.resources.backends import replace_tenant_context
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline.tenants import TenantsResource
from sync_pipeline.webhooks import targeted
from sync_pipeline.webhooks.sensor import WEBHOOK_BATCH_TAG


@dataclass
class ListingResult:
    rows: list[str] = field(default_factory=list)
    row_listing: list[str] = field(default_factory=list)
    row_page: list[int] = field(default_factory=list)
    kept_pages: list[tuple[str, int]] = field(default_factory=list)
    digests: dict[str, list[str | None]] = field(default_factory=dict)
    pages_fetched: int = 0
    pages_not_modified: int = 0


def stored_page_sizes(
    duckdb: SyncDuckDB, tenant: str, entity: Entity
) -> dict[tuple[str, int], int]:
    with duckdb.get_connection() as conn:
        rows = conn.execute(
            f"SELECT listing, page, count(*) FROM raw.tripletex_{PLURAL[entity]} "
            "WHERE tenant = ? GROUP BY ALL",
            [tenant],
        ).fetchall()
    return {(listing, page): n for listing, page, n in rows}


def fetch(
    client: TripletexClient,
    entity: Entity,
    old_digests: dict[str, list[str | None]],
    stored_sizes: dict[tuple[str, int], int],
) -> ListingResult:
    """Walk every page of every pass; 304 pages are kept from the stored snapshot."""
    out = ListingResult()
    for listed in client.iter_listing(entity, old_digests, stored_sizes):
        out.digests.setdefault(listed.listing, []).append(listed.page.version_digest)
        if listed.page.not_modified:
            out.pages_not_modified += 1
            out.kept_pages.append((listed.listing, listed.number))
            continue
        out.pages_fetched += 1
        values = listed.page.values or []
        out.rows.extend(json_rows(values))
        out.row_listing.extend([listed.listing] * len(values))
        out.row_page.extend([listed.number] * len(values))
    return out


def land_token_owner(duckdb: SyncDuckDB, client: TripletexClient, tenant: str, mode: str) -> None:
    """P10's default project manager is the user the integration logs in as, and a manager
    must be one Tripletex lets manage projects: ``>whoAmI`` and
    ``/employee?assignableProjectManagers=true`` when not known yet, and again on every
    full extract (so a change of access is seen at the latest by the nightly one)."""
    with duckdb.get_connection() as conn:
        known = conn.execute(
            "SELECT 1 FROM sync.tenant_context WHERE tenant = ?", [tenant]
        ).fetchone()
    if known and mode != "full":
        return
    me = client.who_am_i()
    managers = client.project_manager_ids()
    with duckdb.get_connection() as conn, transaction(conn):
        replace_tenant_context(conn, tenant, me.get("employeeId"), me.get("companyId"))
        conn.execute("DELETE FROM staging.tripletex_project_managers WHERE tenant = ?", [tenant])
        conn.execute(
            "INSERT INTO staging.tripletex_project_managers (tenant, employee_id) "
            "SELECT ?, unnest(?::BIGINT[])",
            [tenant, managers],
        )


def raw_places(
    duckdb: SyncDuckDB, tenant: str, entity: Entity, ids: list[int]
) -> dict[int, tuple[str, int]]:
    """The (listing, page) each of these records holds in the stored snapshot."""
    with duckdb.get_connection() as conn:
        rows = conn.execute(
            f"SELECT id, any_value(listing), any_value(page) FROM raw.tripletex_{PLURAL[entity]} "
            "WHERE tenant = ? AND list_contains(?::BIGINT[], id) GROUP BY id",
            [tenant, ids],
        ).fetchall()
    return {int(i): (listing, page) for i, listing, page in rows}


def targeted_rows(
    records: list[dict[str, Any]], places: dict[int, tuple[str, int]], first_pass: str
) -> pa.Table:
    """Records read by id, each on the page it held (the next listing re-reads that page,
    whose digest changed with it); a new one on page -1, a page no listing keeps."""
    where = [places.get(int(r["id"]), (first_pass, -1)) for r in records]
    return pa.table(
        {
            "raw_json": pa.array(json_rows(records), pa.string()),
            "listing": pa.array([w[0] for w in where], pa.string()),
            "page": pa.array([w[1] for w in where], pa.int32()),
        }
    )


def deletions_not_confirmed(
    conn: DuckDBPyConnection,
    tenant: str,
    run_id: str,
    entity: Entity,
    read: targeted.TargetedRead,
    batch: str,
) -> list[Finding]:
    """A deletion event whose record Tripletex still has: nothing is deleted (G7), and the
    run says so (info DELETION_NOT_CONFIRMED, with both ids where a link exists: G10), as
    the apply step does for a record missing from a listing."""
    spec = CODES["DELETION_NOT_CONFIRMED"]
    linked = dict(
        conn.execute(
            "SELECT tripletex_id, svenn_id FROM sync.links WHERE tenant = ? AND entity = ? "
            "AND state = 'active' AND list_contains(?::BIGINT[], tripletex_id)",
            [tenant, entity, read.deletion_not_confirmed],
        ).fetchall()
    )
    labels = {int(r["id"]): r for r in read.records}
    key_field = TripletexClient.listing(entity).key_field
    return [
        Finding(
            tenant=tenant,
            run_id=run_id,
            entity=entity,
            side="tripletex",
            svenn_id=linked.get(record_id),
            tripletex_id=record_id,
            record_label=" ".join(
                str(v)
                for v in (labels[record_id].get(key_field), labels[record_id].get("name"))
                if v not in (None, "")
            )
            or None,
            code=spec.code,
            severity=spec.severity,
            rule_id=spec.rule_id,
            message=spec.message,
            details={"found_by": EXTRACT_FINDING, "event": "delete", "webhook_batch": batch},
        )
        for record_id in read.deletion_not_confirmed
    ]


def extract_targeted(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    client: TripletexClient,
    entity: Entity,
    changes: targeted.Changes,
    previous: PreviousExtract,
) -> dict[str, Any]:
    """The records the run's webhook events named, read by id and merged into the
    snapshot (no listing); see :mod:`sync_pipeline.webhooks.targeted`."""
    tenant, run_id = context.partition_key, context.run.run_id
    batch = context.run.tags[WEBHOOK_BATCH_TAG]
    listing = client.listing(entity)
    ids = changes.of("tripletex", entity)
    rec = ExtractRecord(tenant, "tripletex", entity, run_id, "targeted", datetime.now(UTC))
    before = client.requests_made
    with timed() as clock:
        try:
            read = targeted.read_tripletex(
                client,
                entity,
                ids,
                fields=listing.fields,
                deletions=changes.deletions.get(("tripletex", entity), ()),
            )
            if entity == "employee":
                land_token_owner(duckdb, client, tenant, "incremental")
        except ApiError as err:
            fail_incomplete(duckdb, rec, client.requests_made - before, err)
        rec.requests = client.requests_made - before
        rec.watermark = previous.watermark  # the pages' digests are still the last listing's
        table = targeted_rows(
            read.records, raw_places(duckdb, tenant, entity, ids), next(iter(listing.passes))
        )
        with duckdb.get_connection() as conn:
            row_count = write_snapshot(conn, rec, table, replace="by_id", ids=ids)
            insert_findings(
                conn, deletions_not_confirmed(conn, tenant, run_id, entity, read, batch)
            )
    context.log.info(
        f"Tripletex {PLURAL[entity]}: targeted extract (webhook batch {batch}), "
        f"{len(ids)} records asked for by id, {len(read.records)} found, {len(read.gone)} gone, "
        f"{len(read.deletion_not_confirmed)} deletions not confirmed, {row_count} in snapshot, "
        f"{rec.requests} requests"
    )
    return {
        "dagster/row_count": row_count,
        "mode": "targeted",
        "mode_reason": f"webhook batch {batch}",
        "complete": True,
        "records_fetched": len(read.records),
        "records_gone": len(read.gone),
        "deletions_not_confirmed": len(read.deletion_not_confirmed),
        "requests": rec.requests,
        "duration_s": round(clock["seconds"], 3),
    }


def extract_entity(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    client: TripletexClient,
    entity: Entity,
    changes: targeted.Changes | None = None,
) -> dict[str, Any]:
    """Extract one entity; returns the metadata common to its two assets.

    ``changes``: the run's webhook events (tag ``WEBHOOK_BATCH_TAG``); when the entity
    would be extracted incrementally anyway and they are few, they are read by id instead
    of listing the collection."""
    tenant = context.partition_key
    fields = client.listing(entity).fields
    now = datetime.now(UTC)
    with duckdb.get_connection() as conn:
        previous = previous_extract(conn, tenant, "tripletex", entity)
    mode, why = choose_mode(previous, force_full=wants_full_extract(context), now=now)
    old = (previous.watermark or {}) if previous else {}
    if mode == "incremental" and (
        old.get("page_size") != client.page_size or old.get("fields") != fields
    ):
        mode, why = "full", "page size or field selection changed"
    if (
        changes is not None
        and previous is not None
        and mode == "incremental"
        and not changes.too_many("tripletex", entity)
    ):
        return extract_targeted(context, duckdb, client, entity, changes, previous)
    old_digests = old.get("digests", {}) if mode == "incremental" else {}
    sizes = stored_page_sizes(duckdb, tenant, entity) if mode == "incremental" else {}
    rec = ExtractRecord(tenant, "tripletex", entity, context.run.run_id, mode, now)
    before = client.requests_made
    with timed() as clock:
        try:
            got = fetch(client, entity, old_digests, sizes)
            if entity == "employee":
                land_token_owner(duckdb, client, tenant, mode)
        except ApiError as err:
            fail_incomplete(duckdb, rec, client.requests_made - before, err)
        rec.requests = client.requests_made - before  # the >whoAmI included
        rec.watermark = {
            "page_size": client.page_size,
            "fields": fields,
            "digests": got.digests,
        }
        table = pa.table(
            {
                "raw_json": pa.array(got.rows, pa.string()),
                "listing": pa.array(got.row_listing, pa.string()),
                "page": pa.array(got.row_page, pa.int32()),
            }
        )
        with duckdb.get_connection() as conn:
            row_count = write_snapshot(conn, rec, table, replace="pages", keep_pages=got.kept_pages)
    context.log.info(
        f"Tripletex {PLURAL[entity]}: {mode} extract ({why}), {got.pages_fetched} pages fetched, "
        f"{got.pages_not_modified} unchanged (304), {row_count} in snapshot, "
        f"{rec.requests} requests"
    )
    return {
        "dagster/row_count": row_count,
        "mode": mode,
        "mode_reason": why,
        "complete": True,
        "records_fetched": len(got.rows),
        "pages_fetched": got.pages_fetched,
        "pages_not_modified": got.pages_not_modified,
        "requests": rec.requests,
        "duration_s": round(clock["seconds"], 3),
    }


NOTES: dict[Entity, str] = {
    "project": "With participants' employee ids, isInternal and mainProject.",
    "customer": "Active and inactive customers (two listings).",
    "employee": "Tripletex has no inactive employees.",
}


def tripletex_side(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    tenants: TenantsResource,
    tuning: ClientTuning,
) -> SideExtract:
    """Tripletex for the ``extract`` step; a webhook-started run reads its events' ids."""
    changes = None
    batch = context.run.tags.get(WEBHOOK_BATCH_TAG)
    if batch:
        with duckdb.get_connection() as conn:
            changes = targeted.changes_of_batch(conn, context.partition_key, batch)
    return SideExtract(
        "tripletex",
        partial(extract_entity, changes=changes),
        lambda: tenants.tripletex_client(context.partition_key, **tuning.client_overrides()),
    )
