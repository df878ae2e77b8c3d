"""G13 in the job: the tenant lease (``sync_pipeline.lease``) as the first step of every run.

``sync/lease`` (group ``extract``, upstream of both extract assets) takes the tenant's
lease before anything is read or written; a second run of the tenant fails right there —
nothing extracted, planned or written — with ``RUN_ALREADY_ACTIVE`` in ``sync.errors`` and
outcome ``refused`` in ``sync.runs``. The steps that work long (extract, apply, the error
log) renew it as they start and from a background thread while they run, and stop when
the lease was taken from them. The last step of the run releases it (``sync/errors``,
or ``sync/plan`` in a run without apply); a failed step releases it through the jobs'
failure hook, a run terminated from the UI through the orphaned-runs sensor.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from sync_pipeline import lease
from sync_pipeline.assets.apply.error_log import Finding, insert_findings, merge_error_log
from sync_pipeline.assets.apply.runs import upsert_run
from sync_pipeline.model import CODES
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB

LEASE_KEY = dg.AssetKey(["sync", "lease"])


def record_refusal(conn: Any, tenant: str, run_id: str, held: lease.Lease) -> None:
    """Say why in ``sync.errors`` (RUN_ALREADY_ACTIVE) and ``sync.runs`` (outcome refused)."""
    spec = CODES["RUN_ALREADY_ACTIVE"]
    details = {
        "rule_id": spec.rule_id,
        "active_run_id": held.run_id,
        "holder": held.holder,
        "acquired_at": str(held.acquired_at),
        "expires_at": str(held.expires_at),
    }
    finding = Finding(
        tenant, run_id, None, None, None, None, None, spec.code, spec.severity, spec.rule_id,
        spec.message, details,
    )  # fmt: skip
    insert_findings(conn, [finding])
    merge_error_log(conn, tenant, run_id, complete=False)
    upsert_run(
        conn,
        tenant,
        run_id,
        outcome="refused",
        reason=f"run {held.run_id} ({held.holder}) is syncing the tenant (G13)",
    )
    conn.execute(
        "UPDATE sync.runs SET finished_at = now(), duration_s = 0 WHERE tenant = ? AND run_id = ?",
        [tenant, run_id],
    )


def _refuse(duckdb: SyncDuckDB, tenant: str, run_id: str, refused: lease.LeaseRefused) -> None:
    with duckdb.get_connection() as conn:
        record_refusal(conn, tenant, run_id, refused.lease)
    raise dg.Failure(
        description=str(refused),
        metadata={"code": "RUN_ALREADY_ACTIVE", "active_run_id": refused.lease.run_id},
    )


@dg.asset(
    key=LEASE_KEY,
    partitions_def=tenant_partitions,
    group_name="extract",
    owners=["team:sync"],
    kinds={"duckdb", "python"},
    description=(
        "G13: the first step of every run takes the tenant's lease in sync.leases (one guarded "
        "write), so a second run of the tenant — from the CLI, a schedule, the UI or another "
        "Dagster instance on the same state store — fails here and writes nothing but its "
        "RUN_ALREADY_ACTIVE error. Renewed while the run works, released at its end; a run "
        "killed outright loses it after SYNC_LEASE_TTL_S seconds (default 600)."
    ),
)
def tenant_lease(context: dg.AssetExecutionContext, duckdb: SyncDuckDB) -> dg.MaterializeResult:
    tenant, run_id = context.partition_key, context.run.run_id
    try:
        with duckdb.get_connection() as conn:
            held = lease.acquire(conn, tenant, run_id, finished=lease.finished_in(context.instance))
    except lease.LeaseRefused as refused:
        _refuse(duckdb, tenant, run_id, refused)
    return dg.MaterializeResult(
        metadata={
            "holder": held.holder,
            "acquired_at": str(held.acquired_at),
            "expires_at": str(held.expires_at),
            "ttl_s": dg.MetadataValue.float(lease.ttl_s()),
        }
    )


class Holding:
    """The lease as a step holds it; ``check()`` fails the step once another run took it."""

    def __init__(self, tenant: str, run_id: str) -> None:
        self.tenant, self.run_id = tenant, run_id
        self.lost = threading.Event()

    def check(self) -> None:
        if self.lost.is_set():
            raise dg.Failure(
                description=f"tenant '{self.tenant}': this run lost its lease (not renewed in "
                "time); it stops before writing more (G13)"
            )


@contextmanager
def holding(context: Any, duckdb: SyncDuckDB) -> Iterator[Holding]:
    """Renew the run's lease as the step starts and every third of the TTL while it runs.

    A step materialized on its own (no ``sync/lease`` step in its run) takes the lease for
    its own duration. Refused like the first step when another live run holds it.
    """
    tenant, run_id = context.partition_key, context.run.run_id
    try:
        with duckdb.get_connection() as conn:
            before = lease.current(conn, tenant)
            run_scoped = (
                before is not None and before.run_id == run_id and before.released_at is None
            )
            lease.acquire(conn, tenant, run_id, finished=lease.finished_in(context.instance))
    except lease.LeaseRefused as refused:
        _refuse(duckdb, tenant, run_id, refused)
    held = Holding(tenant, run_id)
    stop = threading.Event()
    interval = max(lease.ttl_s() / 3, 0.05)

    def renew() -> None:
        while not stop.wait(interval):
            try:
                with duckdb.get_connection() as conn:
                    if not lease.renew(conn, tenant, run_id):
                        held.lost.set()
                        return
            except Exception as exc:  # the file busy for long: try again next interval
                context.log.warning(f"lease renewal postponed: {exc}")

    thread = threading.Thread(target=renew, name=f"lease-{tenant}", daemon=True)
    thread.start()
    try:
        yield held
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
        if not run_scoped:
            with duckdb.get_connection() as conn:
                lease.release(conn, run_id, tenant)


def run_includes(context: Any, key: dg.AssetKey) -> bool:
    """Whether this run materializes ``key`` (its selection, else its whole job)."""
    selection = context.run.asset_selection
    if selection is not None:
        return key in selection
    return key in context.job_def.asset_layer.executable_asset_keys


def release_at_end(context: Any, duckdb: SyncDuckDB) -> None:
    """The run's last step is done: the tenant is free for the next run."""
    with duckdb.get_connection() as conn:
        lease.release(conn, context.run.run_id, context.partition_key)


@dg.failure_hook(
    name="release_tenant_lease", required_resource_keys={"duckdb"}
)  # fmt: skip
def release_lease_on_failure(context: dg.HookContext) -> None:
    """A failed step ends the run (its downstream steps are skipped): free the tenant."""
    with context.resources.duckdb.get_connection() as conn:
        lease.release(conn, context.run_id)
