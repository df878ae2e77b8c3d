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
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from sync_pipeline.assets.extract.outputs import (
    ExtractConfig,
    extract_side,
    fail_incomplete,
    specs,
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
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.backends import replace_tenant_context
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline.tenants import TenantsResource


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


def extract_entity(
    context: dg.AssetExecutionContext,
    duckdb: SyncDuckDB,
    client: TripletexClient,
    entity: Entity,
) -> dict[str, Any]:
    """Extract one entity; returns the metadata common to its two assets."""
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


_NOTES: dict[Entity, str] = {
    "project": "With participants' employee ids, isInternal and mainProject.",
    "customer": "Active and inactive customers (two listings).",
    "employee": "Tripletex has no inactive employees.",
}


@dg.multi_asset(
    name="tripletex_extract",
    specs=specs("tripletex", _NOTES),
    partitions_def=tenant_partitions,
    can_subset=True,
    description=__doc__,
)
def tripletex_extract(
    context: dg.AssetExecutionContext,
    config: ExtractConfig,
    duckdb: SyncDuckDB,
    tenants: TenantsResource,
):
    yield from extract_side(
        context,
        duckdb,
        "tripletex",
        extract_entity,
        lambda: tenants.tripletex_client(context.partition_key, **config.client_overrides()),
    )
