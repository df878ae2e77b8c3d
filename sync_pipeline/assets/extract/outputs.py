"""What the extract step looks like in Dagster: its specs, run config and metadata.

One multi-asset (``extract``, in ``assets.py``) holds a raw and a staging asset per system
and entity, subsettable per entity. Each system is listed with one client session in a
thread of its own, so the two systems' listings overlap in one step (a run executes its
steps in process, one after the other: a process per step cost more CPU than the sync
work itself).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import dagster as dg
import duckdb
from pydantic import Field

from sync_pipeline.assets.extract.binding import BINDING_KEY
from sync_pipeline.assets.extract.snapshot import ExtractRecord, record_failed_extract
from sync_pipeline.assets.lease import LEASE_KEY, Holding, holding
from sync_pipeline.model import ENTITIES, PLURAL, Entity, Side, raw_table, staging_table
from sync_pipeline.partitions import FULL_EXTRACT_TAG
from sync_pipeline.resources.http import ApiError
from sync_pipeline.resources.state import preview
from sync_pipeline.tenants import TenantConfigError

GROUP = "extract"
OWNERS = ["team:sync"]
PREVIEW_ROWS = 5
#: Cell width of the previews (raw and staging rows are wide: many short cells).
PREVIEW_WIDTH = 40

_SYSTEM_NAME = {"svenn": "Svenn", "tripletex": "Tripletex"}


class ClientTuning(dg.Config):
    """Client tuning of one system for one run; the defaults suit production."""

    page_size: int | None = Field(
        default=None,
        description="Records per list request (default: Tripletex 1000, Svenn 500).",
    )
    max_retries: int | None = Field(
        default=None, description="Retries per request on 429/5xx/connection errors (default 5)."
    )
    backoff_seconds: float | None = Field(
        default=None, description="First retry wait after a 5xx; doubles (default 0.5)."
    )

    def client_overrides(self) -> dict[str, Any]:
        overrides = {
            "page_size": self.page_size,
            "max_retries": self.max_retries,
            "backoff_factor": self.backoff_seconds,
        }
        return {k: v for k, v in overrides.items() if v is not None}


class ExtractConfig(dg.Config):
    """Run config of the ``extract`` step: the clients' tuning, per system."""

    tripletex: ClientTuning = Field(default_factory=ClientTuning)
    svenn: ClientTuning = Field(default_factory=ClientTuning)


def raw_key(side: Side, entity: Entity) -> dg.AssetKey:
    return dg.AssetKey(["raw", f"{side}_{PLURAL[entity]}"])


def staging_key(side: Side, entity: Entity) -> dg.AssetKey:
    return dg.AssetKey(["staging", f"{side}_{PLURAL[entity]}"])


def specs(side: Side, entity_notes: dict[Entity, str]) -> list[dg.AssetSpec]:
    kinds = {"duckdb", "python", side}
    out = []
    for entity in ENTITIES:
        out.append(
            dg.AssetSpec(
                raw_key(side, entity),
                deps=[LEASE_KEY, BINDING_KEY],  # G13 then G11: nothing read before both
                description=(
                    f"{_SYSTEM_NAME[side]} {PLURAL[entity]} as the API returns them "
                    f"({raw_table(side, entity)}): API fields, raw JSON, extraction time. "
                    + entity_notes[entity]
                ),
                group_name=GROUP,
                owners=OWNERS,
                kinds=kinds,
            )
        )
        out.append(
            dg.AssetSpec(
                staging_key(side, entity),
                deps=[raw_key(side, entity)],
                description=(
                    f"{_SYSTEM_NAME[side]} {PLURAL[entity]} in the canonical model of "
                    f"SYNC-RULES §0 ({staging_table(side, entity)}), written in the same "
                    "transaction as the raw table."
                ),
                group_name=GROUP,
                owners=OWNERS,
                kinds={"duckdb", "python"},
            )
        )
    return out


def selected_entities(context: dg.AssetExecutionContext, side: Side) -> list[Entity]:
    """Entities whose raw or staging asset is selected (both are always written together)."""
    keys = context.selected_asset_keys
    return [e for e in ENTITIES if raw_key(side, e) in keys or staging_key(side, e) in keys]


def wants_full_extract(context: dg.AssetExecutionContext) -> bool:
    return str(context.run.tags.get(FULL_EXTRACT_TAG, "")).lower() == "true"


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    box = {"start": time.monotonic(), "seconds": 0.0}
    try:
        yield box
    finally:
        box["seconds"] = time.monotonic() - box["start"]


def results(
    context: dg.AssetExecutionContext,
    conn: duckdb.DuckDBPyConnection,
    side: Side,
    entity: Entity,
    common: dict[str, Any],
) -> Iterator[dg.MaterializeResult]:
    """Materializations of one entity's raw and staging assets, with counts and previews."""
    tenant = context.partition_key
    raw = raw_table(side, entity)
    staging = staging_table(side, entity)
    (raw_rows,) = conn.execute(f"SELECT count(*) FROM {raw} WHERE tenant = ?", [tenant]).fetchone()
    deleted, inactive = conn.execute(
        f"SELECT count(*) FILTER (deleted), count(*) FILTER (NOT coalesce({_active(entity)}, true))"
        f" FROM {staging} WHERE tenant = ?",
        [tenant],
    ).fetchone()
    staging_rows = common.get("dagster/row_count", 0)
    if raw_key(side, entity) in context.selected_asset_keys:
        raw_cols = conn.execute(
            f"SELECT * EXCLUDE (raw_json, tenant) FROM {raw} LIMIT 0"
        ).description
        cols = ", ".join(f'"{c[0]}"' for c in raw_cols if c[0] not in ("changes",))
        yield dg.MaterializeResult(
            asset_key=raw_key(side, entity),
            metadata={
                **common,
                "dagster/row_count": raw_rows,
                "preview": dg.MetadataValue.md(
                    preview(
                        conn,
                        f"SELECT {cols} FROM {raw} WHERE tenant = ? ORDER BY id",
                        [tenant],
                        limit=PREVIEW_ROWS,
                        width=PREVIEW_WIDTH,
                    )
                ),
            },
        )
    if staging_key(side, entity) in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=staging_key(side, entity),
            metadata={
                **common,
                "dagster/row_count": staging_rows,
                "deleted_rows": deleted,
                "inactive_rows": inactive,
                "preview": dg.MetadataValue.md(
                    preview(
                        conn,
                        f"SELECT * FROM {staging} WHERE tenant = ? ORDER BY id",
                        [tenant],
                        limit=PREVIEW_ROWS,
                        width=PREVIEW_WIDTH,
                    )
                ),
            },
        )


def _active(entity: Entity) -> str:
    return "is_active" if entity in ("customer", "employee") else "status <> 'completed'"


def fail_incomplete(duckdb: Any, rec: ExtractRecord, requests: int, err: ApiError) -> NoReturn:
    """Record the incomplete extract and fail the asset; the previous snapshot stays (G7).

    The API error's text is already free of credentials (the clients redact it).
    """
    rec.requests = requests
    rec.error = str(err)
    with duckdb.get_connection() as conn:
        record_failed_extract(conn, rec)
    raise dg.Failure(
        description=(
            f"{_SYSTEM_NAME[rec.side]} {PLURAL[rec.entity]} extract incomplete; the previous "
            f"complete snapshot is kept (G7). {err}"
        ),
        metadata={"entity": rec.entity, "mode": rec.mode, "complete": False},
    )


@dataclass(frozen=True)
class SideExtract:
    """How one system is extracted: its per-entity function and a client factory."""

    side: Side
    extract_entity: Callable[..., dict[str, Any]]
    make_client: Callable[[], Any]


def extract_side(
    context: dg.AssetExecutionContext, duckdb: Any, held: Holding, extract: SideExtract
) -> Iterator[dg.MaterializeResult]:
    """Extract the selected entities in dependency order with one client (one session)."""
    try:
        client = extract.make_client()
    except TenantConfigError as err:
        raise dg.Failure(description=str(err)) from None
    try:
        for entity in selected_entities(context, extract.side):
            held.check()
            common = extract.extract_entity(context, duckdb, client, entity)
            with duckdb.get_connection() as conn:
                done = list(results(context, conn, extract.side, entity, common))
            yield from done
    finally:
        client.close()


def extract_sides(
    context: dg.AssetExecutionContext, duckdb: Any, sides: list[SideExtract]
) -> Iterator[dg.MaterializeResult]:
    """Both systems at once, a thread each; results are yielded as each entity lands.

    A system that fails does not stop the other: its snapshot lands (as with separate
    steps), and then the step fails with every system's failure.
    """
    sides = [s for s in sides if selected_entities(context, s.side)]
    with duckdb.held_open(), holding(context, duckdb) as held:  # G13: renewed meanwhile
        if len(sides) == 1:
            yield from extract_side(context, duckdb, held, sides[0])
            return
        landed: queue.Queue[dg.MaterializeResult | None] = queue.Queue()

        def work(side: SideExtract) -> None:
            try:
                for result in extract_side(context, duckdb, held, side):
                    landed.put(result)
            finally:
                landed.put(None)  # this side is done, whichever way

        with ThreadPoolExecutor(len(sides), thread_name_prefix="extract") as pool:
            futures = [pool.submit(work, side) for side in sides]
            running = len(sides)
            while running:
                result = landed.get()
                if result is None:
                    running -= 1
                else:
                    yield result
        failures = [e for e in (f.exception() for f in futures) if e is not None]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise dg.Failure(
            description=" | ".join(getattr(f, "description", None) or str(f) for f in failures)
        )
