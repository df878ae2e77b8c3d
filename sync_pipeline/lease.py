"""G13: at most one run per tenant, whoever starts it — the tenant lease in ``sync.leases``.

The run queue of one Dagster instance cannot see a run of another instance, nor a CLI run
started while the daemon launches one; the state store is what every run shares, so the
lease lives there. The first step of a run takes it with one guarded write (the row is
free, released, expired, or held by a run known to be dead); the run's steps renew it
while they work; its last step (or a failure hook, the CLI, a sensor) releases it. A run
killed outright stops renewing, so its lease expires after ``SYNC_LEASE_TTL_S`` seconds
(default 600) and the tenant's schedule goes on.

This module is the storage side (SQL, liveness, orphaned runs); the Dagster side is
``sync_pipeline.assets.lease``.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from sync_pipeline.resources.backends import execute

TTL_ENV = "SYNC_LEASE_TTL_S"
DEFAULT_TTL_S = 600.0
#: Jobs whose first step takes the lease (an orphan is a run of these without a live lease).
LEASED_JOBS = ("sync_job", "plan_job")
#: Tags the CLI puts on the runs it executes in its own process.
PID_TAG, HOST_TAG = "sync_pipeline/pid", "sync_pipeline/host"
PARTITION_TAG = "dagster/partition"


def ttl_s() -> float:
    """How long a lease stays valid without renewal (``SYNC_LEASE_TTL_S``, default 600)."""
    return float(os.environ.get(TTL_ENV) or DEFAULT_TTL_S)


def holder_id() -> str:
    """``host:pid`` of the process running the run: a step process spawned by the
    multiprocess executor names its parent (the run worker), which lives as long as the run."""
    parent = multiprocessing.parent_process()
    pid = parent.pid if parent is not None and parent.pid else os.getpid()
    return f"{socket.gethostname()}:{pid}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_dead(holder: str) -> bool:
    """True only when the holder is a process of this host that no longer exists."""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


@dataclass
class Lease:
    tenant: str
    run_id: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    released_at: datetime | None
    live: bool  # not released and not expired (by the database's clock)

    def describe(self) -> str:
        return (
            f"run {self.run_id} ({self.holder}) holds it since {_ts(self.acquired_at)}, "
            f"renewed {_ts(self.renewed_at)}, valid until {_ts(self.expires_at)}"
        )


class LeaseRefused(RuntimeError):
    """Another live run holds the tenant (G13)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        super().__init__(
            f"tenant '{lease.tenant}' is being synced by another run: {lease.describe()} "
            "(G13: one run per tenant)"
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(value: datetime | None) -> str:
    return "-" if value is None else _utc(value).strftime("%Y-%m-%d %H:%M:%SZ")


_COLUMNS = "tenant, run_id, holder, acquired_at, renewed_at, expires_at, released_at"
_LIVE = "(released_at IS NULL AND expires_at > now())"


def current(conn: duckdb.DuckDBPyConnection, tenant: str) -> Lease | None:
    rows = execute(conn, f"SELECT {_COLUMNS}, {_LIVE} FROM sync.leases WHERE tenant = ?", [tenant])
    return Lease(*rows[0]) if rows else None


def all_leases(conn: duckdb.DuckDBPyConnection) -> dict[str, Lease]:
    rows = execute(conn, f"SELECT {_COLUMNS}, {_LIVE} FROM sync.leases")
    return {row[0]: Lease(*row) for row in rows}


def g13_acquire_sql() -> str:
    """The guarded write: insert, or take over a row that is ours, released, expired or held
    by the run known dead (``$stale``). One statement against the table's real key, so two
    runs cannot both succeed — on a lake too, where the table lives in the catalog's
    PostgreSQL (``backends.CATALOG_TABLES``: DuckLake appends of one key never conflict).
    Written in the SQL both DuckDB and PostgreSQL take."""
    return """
    INSERT INTO sync.leases
      (tenant, run_id, holder, acquired_at, renewed_at, expires_at, released_at)
    VALUES ($tenant, $run_id, $holder, now(), now(),
            now() + CAST($ttl AS DOUBLE PRECISION) * INTERVAL '1 second', NULL)
    ON CONFLICT (tenant) DO UPDATE SET
      run_id = excluded.run_id, holder = excluded.holder,
      acquired_at = CASE WHEN leases.run_id = excluded.run_id AND leases.released_at IS NULL
                         THEN leases.acquired_at ELSE excluded.acquired_at END,
      renewed_at = excluded.renewed_at, expires_at = excluded.expires_at, released_at = NULL
    WHERE leases.run_id = excluded.run_id OR leases.released_at IS NOT NULL
       OR leases.expires_at <= now() OR leases.run_id = $stale
    """


def acquire(
    conn: duckdb.DuckDBPyConnection,
    tenant: str,
    run_id: str,
    *,
    finished: Callable[[str], bool] = lambda _run_id: False,
    ttl: float | None = None,
    holder: str | None = None,
) -> Lease:
    """Take (or renew) the tenant's lease for ``run_id``; raises ``LeaseRefused``.

    ``finished(run_id)`` tells whether a holder run is known to be over (the caller's
    Dagster instance); a holder process of this host that is gone counts as over too.
    """
    held = current(conn, tenant)
    stale = None
    if (
        held is not None
        and held.live
        and held.run_id != run_id
        and (holder_dead(held.holder) or finished(held.run_id))
    ):
        stale = held.run_id
    execute(
        conn,
        g13_acquire_sql(),
        {
            "tenant": tenant,
            "run_id": run_id,
            "holder": holder or holder_id(),
            "ttl": float(ttl if ttl is not None else ttl_s()),
            "stale": stale,
        },
    )
    lease = current(conn, tenant)
    assert lease is not None
    if lease.run_id != run_id or lease.released_at is not None:
        raise LeaseRefused(lease)
    return lease


def renew(
    conn: duckdb.DuckDBPyConnection, tenant: str, run_id: str, ttl: float | None = None
) -> bool:
    """Extend the run's lease; False when the run no longer holds it."""
    rows = execute(
        conn,
        "UPDATE sync.leases SET renewed_at = now(), "
        "expires_at = now() + CAST(? AS DOUBLE PRECISION) * INTERVAL '1 second' "
        "WHERE tenant = ? AND run_id = ? AND released_at IS NULL RETURNING tenant",
        [float(ttl if ttl is not None else ttl_s()), tenant, run_id],
    )
    return bool(rows)


def release(conn: duckdb.DuckDBPyConnection, run_id: str, tenant: str | None = None) -> bool:
    """Release the lease the run holds (any tenant unless named); True if it held one."""
    rows = execute(
        conn,
        "UPDATE sync.leases SET released_at = now(), expires_at = now() "
        "WHERE run_id = ? AND released_at IS NULL AND (CAST(? AS VARCHAR) IS NULL OR tenant = ?) "
        "RETURNING tenant",
        [run_id, tenant, tenant],
    )
    return bool(rows)


def release_holder(conn: duckdb.DuckDBPyConnection, tenant: str, holder: str) -> bool:
    """Release whatever lease of the tenant this process still holds (CLI, after its run)."""
    rows = execute(
        conn,
        "UPDATE sync.leases SET released_at = now(), expires_at = now() "
        "WHERE tenant = ? AND holder = ? AND released_at IS NULL RETURNING tenant",
        [tenant, holder],
    )
    return bool(rows)


def live_holder(
    conn: duckdb.DuckDBPyConnection, tenant: str, finished: Callable[[str], bool]
) -> Lease | None:
    """The lease of a run that is syncing the tenant now, if any (for a refusal up front)."""
    lease = current(conn, tenant)
    if lease is None or not lease.live:
        return None
    if holder_dead(lease.holder) or finished(lease.run_id):
        return None
    return lease


def describe_for_tenants(lease: Lease | None) -> str:
    """The ``lease`` column of ``sync-pipeline tenants``."""
    if lease is None:
        return "free"
    short = lease.run_id[:8]
    if lease.released_at is not None:
        return f"free (run {short} released {_ts(lease.released_at)})"
    if not lease.live:
        return f"EXPIRED (run {short}, last renewed {_ts(lease.renewed_at)})"
    if holder_dead(lease.holder):
        return f"STALE (run {short}: process {lease.holder} is gone)"
    return f"held by run {short} ({lease.holder}) until {_ts(lease.expires_at)}"


# -- orphaned Dagster runs -------------------------------------------------------------------
def _unfinished_statuses() -> list[Any]:
    from dagster import DagsterRunStatus

    return [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def _started(record: Any) -> datetime | None:
    if record.start_time:
        return datetime.fromtimestamp(record.start_time, UTC)
    return _utc(record.create_timestamp) if record.create_timestamp else None


def orphan_reason(record: Any, lease: Lease | None, now: datetime, grace: timedelta) -> str | None:
    """Why an unfinished run is dead, or None while it may be alive.

    A CLI run whose process on this host is gone is dead at once. Otherwise a run of a
    leased job lives while its lease does (and a little after releasing it, for its asset
    checks); one that holds no lease past the grace period (the TTL) stopped renewing it.
    """
    run = record.dagster_run
    pid, host = run.tags.get(PID_TAG, ""), run.tags.get(HOST_TAG)
    if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
        return "the sync-pipeline process running it was killed"
    if run.job_name not in LEASED_JOBS:
        return None
    if lease is not None and lease.run_id == run.run_id:
        if lease.released_at is not None:
            return None if now < lease.released_at + grace else "it stopped after its last step"
        if holder_dead(lease.holder):
            return f"the process running it ({lease.holder}) is gone"
        if lease.live:
            return None
        return f"its tenant lease expired at {_ts(lease.expires_at)} without renewal (G13)"
    started = _started(record)
    if started is not None and now - started > grace:
        return "it holds no tenant lease (not renewed within the lease time, G13)"
    return None


def fail_orphaned_runs(
    instance: Any, conn: duckdb.DuckDBPyConnection, *, grace_s: float | None = None
) -> list[str]:
    """Mark failed the unfinished runs whose process is gone (killed, power loss) and free
    their pool slots, so they neither show as running nor block the tenant's schedule;
    returns their run ids. Also releases any lease such a run still holds."""
    from dagster import RunsFilter

    records = instance.get_run_records(RunsFilter(statuses=_unfinished_statuses()))
    if not records:
        return []
    leases = all_leases(conn)
    (now,) = conn.execute("SELECT now()").fetchone()
    grace = timedelta(seconds=ttl_s() if grace_s is None else grace_s)
    failed = []
    for record in records:
        run = record.dagster_run
        reason = orphan_reason(record, leases.get(run.tags.get(PARTITION_TAG, "")), now, grace)
        if reason is None:
            continue
        instance.report_run_failed(run, f"run marked failed: {reason}")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        release(conn, run.run_id)
        failed.append(run.run_id)
    return failed


def release_finished(instance: Any, conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Release leases still held by runs this instance knows to be over (a run terminated
    from the UI runs no failure hook); returns the tenants freed."""
    freed = []
    for tenant, lease in all_leases(conn).items():
        if lease.released_at is not None:
            continue
        run = instance.get_run_by_id(lease.run_id)
        if run is not None and run.is_finished and release(conn, lease.run_id, tenant):
            freed.append(tenant)
    return freed


def finished_in(instance: Any) -> Callable[[str], bool]:
    """``finished(run_id)`` against a Dagster instance (False for a run it does not know)."""

    def finished(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    return finished
