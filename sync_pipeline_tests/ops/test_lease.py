"""G13: one run per tenant, whoever starts it — the tenant lease in the state store, the
store's refusal of a second active link, and the repair of links doubled before."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from sync_pipeline import lease
from sync_pipeline.assets.apply import wal
from sync_pipeline.assets.apply.checks import ids_in_two_active_links
from sync_pipeline.assets.apply.executor import PlanExecutor, PlanRow, Result
from sync_pipeline.assets.apply.links import LinkWrite, write_links
from sync_pipeline.assets.apply.recovery import recover
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.sensors import orphaned_runs_sensor
from sync_pipeline.tenants import TenantsResource

OTHER_HOST = "another-host:4242"  # a holder this host cannot prove dead


def _hold(conn, tenant: str, run_id: str, *, holder: str = OTHER_HOST, expires_in_s: float = 600):
    """A lease as a run of ``holder`` left it: renewed now, valid for ``expires_in_s``."""
    conn.execute(
        "INSERT OR REPLACE INTO sync.leases VALUES (?, ?, ?, now() - INTERVAL 20 MINUTE, "
        "now() + to_seconds(?) - to_seconds(600), now() + to_seconds(?), NULL)",
        [tenant, run_id, holder, float(expires_in_s), float(expires_in_s)],
    )


def _link(conn, tenant, entity, svenn_id, tripletex_id, *, synced_minutes_ago=10):
    conn.execute(
        "INSERT INTO sync.links VALUES (?, ?, ?, ?, NULL, 'matched', 'active', NULL, NULL, NULL, "
        "now() - INTERVAL 1 DAY, now() - to_minutes(?))",
        [tenant, entity, svenn_id, tripletex_id, synced_minutes_ago],
    )


def _sync_job_in_process(workspace, tenant: str) -> dg.ExecuteInProcessResult:
    """``sync_job`` as the schedules and the UI run it: no CLI in front of it."""
    from sync_pipeline import definitions
    from sync_pipeline.jobs import sync_job

    defs = dg.Definitions(
        assets=list(definitions.defs.assets or []),
        asset_checks=list(definitions.defs.asset_checks or []),
        jobs=[sync_job],
        resources={
            "duckdb": SyncDuckDB(database=str(workspace.duckdb_path)),
            "tenants": TenantsResource(tenants_file=str(workspace.root / "tenants.yaml")),
        },
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", [tenant])
    return defs.resolve_job_def("sync_job").execute_in_process(
        partition_key=tenant, instance=instance, raise_on_error=False
    )


def test_G13_second_run_refused_while_first_runs(workspace):
    workspace.add_offline_tenant("acme")
    with workspace.db() as conn:
        _hold(conn, "acme", "first-run")
        _link(conn, "acme", "customer", 1, 100)

    second = _sync_job_in_process(workspace, "acme")

    assert not second.success
    failed = {e.step_key for e in second.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failed == {"sync__lease"}  # refused by its first step; nothing downstream ran
    with workspace.db() as conn:
        run = conn.execute(
            "SELECT outcome, reason FROM sync.runs WHERE tenant = 'acme' AND run_id = ?",
            [second.run_id],
        ).fetchall()
        errors = conn.execute(
            "SELECT code, severity, details->>'$.active_run_id' FROM sync.errors "
            "WHERE tenant = 'acme' AND resolved_at IS NULL"
        ).fetchall()
        written = conn.execute(
            "SELECT (SELECT count(*) FROM sync.extracts), (SELECT count(*) FROM sync.plan), "
            "(SELECT count(*) FROM sync.operations), (SELECT count(*) FROM sync.links)"
        ).fetchone()
        held = lease.current(conn, "acme")
    assert run[0][0] == "refused" and "first-run" in run[0][1]
    assert errors == [("RUN_ALREADY_ACTIVE", "warning", "first-run")]
    assert written == (0, 0, 0, 1)  # nothing extracted, planned or written; links not doubled
    assert held.run_id == "first-run" and held.live  # the first run keeps the tenant

    # the CLI refuses up front: exit 2, one line, no run started
    for command in (("run", "--tenant", "acme"), ("plan", "--tenant", "acme")):
        result = workspace.cli(*command)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "first-run" in lines[0] and "another run" in lines[0]
    with workspace.db() as conn:
        assert conn.execute("SELECT count(*) FROM sync.runs").fetchone() == (1,)


def test_G13_second_run_refused_across_processes(workspace):
    """Two live processes take the lease of one tenant through the same state store at
    once: exactly one wins. Each stays alive until both have answered (a holder whose
    process is gone is taken over by design, so an early exit would be a second winner)."""
    workspace.add_offline_tenant("acme")
    workspace.db().close()
    script = (
        "import sys\n"
        "from sync_pipeline import lease\n"
        "from sync_pipeline.resources.storage import SyncDuckDB\n"
        "db = SyncDuckDB(database=sys.argv[1])\n"
        "with db.get_connection() as conn:\n"
        "    try:\n"
        "        lease.acquire(conn, 'acme', sys.argv[2]); answer = 'acquired'\n"
        "    except lease.LeaseRefused:\n"
        "        answer = 'refused'\n"
        "print(answer, flush=True)\n"
        "sys.stdin.read()  # alive, holding the lease, until the test has both answers\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(workspace.duckdb_path), f"run-{n}"],
            env=workspace.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        outcomes = sorted(p.stdout.readline().strip() for p in procs)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=120)
    assert outcomes == ["acquired", "refused"]


def test_G13_lease_expires_after_kill(workspace, monkeypatch):
    workspace.add_offline_tenant("acme")
    with workspace.db() as conn:
        _hold(conn, "acme", "live-run")
        with pytest.raises(lease.LeaseRefused):
            lease.acquire(conn, "acme", "next-run")

        # killed on another host: no renewal for longer than the lease time
        _hold(conn, "acme", "killed-run", expires_in_s=-1)
        taken = lease.acquire(conn, "acme", "next-run")
        assert (taken.run_id, taken.live, taken.holder) == ("next-run", True, lease.holder_id())

        # killed on this host: its process is gone, so the lease is taken over at once
        probe = subprocess.Popen(["true"])
        probe.wait()
        _hold(conn, "acme", "killed-here", holder=f"{socket.gethostname()}:{probe.pid}")
        assert lease.acquire(conn, "acme", "after-kill").run_id == "after-kill"

        # the lease time is configurable
        monkeypatch.setenv(lease.TTL_ENV, "30")
        lease.release(conn, "after-kill")
        short = lease.acquire(conn, "acme", "short-run")
        assert short.expires_at - short.renewed_at == timedelta(seconds=30)


def test_G13_links_refuse_second_active_link(tmp_path):
    db = SyncDuckDB(database=str(tmp_path / "state.duckdb"))
    with db.get_connection() as conn:
        _link(conn, "acme", "customer", 1, 100)
        refused = write_links(
            conn,
            "acme",
            [
                LinkWrite(
                    "insert", "customer", 1, 200, origin="svenn"
                ),  # Svenn 1 is linked already
                LinkWrite(
                    "insert", "customer", 2, 100, origin="svenn"
                ),  # Tripletex 100 is linked already
                LinkWrite("insert", "customer", 3, 300, origin="svenn"),
                LinkWrite("insert", "customer", 3, 301, origin="svenn"),  # twice in one batch
                LinkWrite(
                    "insert", "project", 1, 100, origin="svenn"
                ),  # another entity: its own ids
            ],
        )
        assert [(w.svenn_id, w.tripletex_id) for w in refused] == [(1, 200), (2, 100), (3, 301)]
        assert ids_in_two_active_links(conn, "acme") == []

    # through the executor: the write that made the refused link is skipped, with a finding
    executor = PlanExecutor(
        tenant="acme", run_id="r1", connect=db.get_connection, tripletex=None, svenn=None
    )
    row = PlanRow(7, "customer", "tripletex", "create", 9, None, "501", "501 Fjord Bygg AS",
                  {}, None, ["G4"], None, None)  # fmt: skip
    executor.outcomes.settle(
        [
            Result(
                row,
                "done",
                result_id=100,
                links=[LinkWrite("insert", "customer", 9, 100, origin="svenn")],
            )
        ],
        with_intent=True,
    )
    with db.get_connection() as conn:
        op = conn.execute(
            "SELECT state, result_id, error->>'$.reason' FROM sync.operations WHERE seq = 7"
        ).fetchone()
        findings = conn.execute(
            "SELECT code, severity, svenn_id FROM sync.findings WHERE run_id = 'r1'"
        ).fetchall()
        links = conn.execute(
            "SELECT svenn_id FROM sync.links WHERE tripletex_id = 100 AND state = 'active' "
            "AND entity = 'customer'"
        ).fetchall()
    assert op[0] == "skipped" and op[1] == 100 and "G13" in op[2]
    assert findings == [("LINK_REFUSED", "error", 9)]
    assert links == [(1,)]
    assert executor.report.states["skipped"] == 1 and executor.report.successes == 0


class _NoApi:
    def __getattr__(self, name):
        raise AssertionError(f"recovery called the API ({name}) for a live run's intent")


def test_G13_recovery_ignores_live_runs_intents(tmp_path):
    db = SyncDuckDB(database=str(tmp_path / "state.duckdb"))
    with db.get_connection() as conn:
        for run_id in ("live-run", "dead-run"):
            wal.record_intents(
                conn,
                "acme",
                run_id,
                [
                    wal.Intent(1, "customer", "tripletex", "create", 5, None, "501", None, {}),
                    wal.Intent(2, "customer", "svenn", "update", 6, 60, "502", None, {}),
                ],
            )
        _hold(conn, "acme", "live-run")
        _hold(conn, "other", "dead-run")  # a lease of another tenant says nothing here
        assert [c.run_id for c in wal.unknown_creates(conn, "acme", "me")] == ["dead-run"]
        conn.execute("DELETE FROM sync.operations WHERE run_id = 'dead-run'")

    counts = recover(
        tenant="acme", run_id="me", connect=db.get_connection, tripletex=_NoApi(),
        svenn=_NoApi(), log=None,
    )  # fmt: skip
    assert counts == {}
    with db.get_connection() as conn:
        states = conn.execute("SELECT seq, state FROM sync.operations ORDER BY seq").fetchall()
        assert states == [(1, "intent"), (2, "intent")]  # the live run settles them itself
        lease.release(conn, "live-run")
        assert [c.run_id for c in wal.unknown_creates(conn, "acme", "me")] == ["live-run"]
        assert wal.abandon_other_intents(conn, "acme", "me") == 1


def _started_run(instance, tenant: str, job_name: str = "sync_job") -> str:
    run = dg.DagsterRun(
        job_name=job_name,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": tenant},
    )
    instance.add_run(run)
    return run.run_id


def test_G13_orphaned_run_marked_failed_by_sensor(workspace, monkeypatch):
    from sync_pipeline.schedules import incremental_sync_schedule

    workspace.add_offline_tenant("acme")
    workspace.add_offline_tenant("bygg")
    monkeypatch.setenv("SYNC_TENANTS_FILE", str(workspace.root / "tenants.yaml"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["acme", "bygg"])
        killed = _started_run(instance, "acme")  # its process was killed: no renewal since
        alive = _started_run(instance, "bygg")
        with workspace.db() as conn:
            _hold(conn, "acme", killed, expires_in_s=-60)
            _hold(conn, "bygg", alive)
        assert incremental_sync_schedule(dg.build_schedule_context(instance=instance)) == (
            dg.SkipReason("no tenant to sync")
        )

        orphaned_runs_sensor(
            dg.build_sensor_context(
                instance=instance,
                resources={"duckdb": SyncDuckDB(database=str(workspace.duckdb_path))},
            )
        )

        status = {r: instance.get_run_by_id(r).status for r in (killed, alive)}
        assert status == {
            killed: dg.DagsterRunStatus.FAILURE,
            alive: dg.DagsterRunStatus.STARTED,
        }
        with workspace.db() as conn:
            assert lease.current(conn, "acme").released_at is not None
            assert lease.current(conn, "bygg").live
        requests = incremental_sync_schedule(dg.build_schedule_context(instance=instance))
        assert [r.partition_key for r in requests] == ["acme"]  # the schedule goes on


def _stage(conn, side: str, table: str, rows: list[tuple], email: bool = False) -> None:
    for row in rows:
        cols = "tenant, id, deleted, number" + (", email" if email else "")
        marks = ", ".join("?" * (len(row) + 1))
        conn.execute(
            f"INSERT INTO staging.{side}_{table} ({cols}) VALUES ({marks})", ["acme", *row]
        )


def test_G13_repair_links_resolves_duplicates(workspace):
    workspace.add_offline_tenant("acme")
    with workspace.db() as conn:
        _stage(
            conn, "svenn", "customers", [(1, False, "100"), (3, False, "300"), (4, False, "400")]
        )
        _stage(conn, "tripletex", "customers", [(10, False, "100"), (11, False, "555"),
                                                 (30, False, "300"), (40, False, "400")])  # fmt: skip
        _stage(conn, "svenn", "employees", [(7, False, "7", "a@x.no"), (8, False, "8", None)], True)
        _stage(conn, "tripletex", "employees", [(70, False, "7", "a@x.no")], True)
        _link(conn, "acme", "customer", 1, 10)  # keys match: kept
        _link(conn, "acme", "customer", 1, 11, synced_minutes_ago=1)  # 555 ≠ 100: detached
        _link(conn, "acme", "customer", 3, 30)  # the same pair twice: merged into one
        _link(conn, "acme", "customer", 3, 30)
        _link(conn, "acme", "customer", 4, 40)  # no duplicate: untouched
        _link(conn, "acme", "employee", 7, 70)
        _link(conn, "acme", "employee", 8, 70)  # 8 ≠ 7: detached
        before = conn.execute("SELECT count(*) FROM sync.links WHERE state = 'active'").fetchone()

    dry = workspace.cli("repair-links", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 would be detached" in dry.stdout
    with workspace.db() as conn:
        assert (
            conn.execute("SELECT count(*) FROM sync.links WHERE state = 'active'").fetchone()
            == before
        )

    result = workspace.cli("repair-links", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    assert "1 copies of a link were merged" in result.stdout and "2 were detached" in result.stdout
    with workspace.db() as conn:
        links = conn.execute(
            "SELECT entity, svenn_id, tripletex_id, state FROM sync.links ORDER BY ALL"
        ).fetchall()
        errors = conn.execute(
            "SELECT code, severity, entity, svenn_id, tripletex_id FROM sync.errors "
            "WHERE resolved_at IS NULL ORDER BY ALL"
        ).fetchall()
        assert ids_in_two_active_links(conn, "acme") == []
        assert lease.current(conn, "acme").live is False  # released after the repair
    assert links == [
        ("customer", 1, 10, "active"),
        ("customer", 1, 11, "detached"),
        ("customer", 3, 30, "active"),
        ("customer", 4, 40, "active"),
        ("employee", 7, 70, "active"),
        ("employee", 8, 70, "detached"),
    ]
    assert errors == [
        ("LINK_DETACHED", "warning", "customer", 1, 11),
        ("LINK_DETACHED", "warning", "employee", 8, 70),
    ]
    again = workspace.cli("repair-links", "--tenant", "acme")
    assert again.returncode == 0 and "nothing to repair" in again.stdout


def test_G13_tenants_shows_lease(workspace):
    for key in ("acme", "bygg", "hus"):
        workspace.add_offline_tenant(key)
    with workspace.db() as conn:
        _hold(conn, "acme", "abcdef12-3456")
        _hold(conn, "hus", "0badc0de-1111", expires_in_s=-5)
    result = workspace.cli("tenants")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[-1] == "lease"
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert f"held by run abcdef12 ({OTHER_HOST}) until" in lines["acme"]
    assert lines["bygg"].rstrip().endswith("free")
    assert "EXPIRED (run 0badc0de" in lines["hus"]


def test_G13_lease_is_the_first_step_of_both_jobs():
    from sync_pipeline.assets.lease import LEASE_KEY
    from sync_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    for job in ("sync_job", "plan_job"):
        keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        assert LEASE_KEY in keys
        roots = {k for k in keys if not (graph.get(k).parent_keys & keys)}
        assert roots == {LEASE_KEY}, job


def test_G13_released_at_the_end_of_a_run_and_by_the_failure_hook(tmp_path):
    from sync_pipeline.assets.lease import release_lease_on_failure

    db = SyncDuckDB(database=str(tmp_path / "state.duckdb"))
    with db.get_connection() as conn:
        lease.acquire(conn, "acme", "failed-run")
    context = dg.build_hook_context(resources={"duckdb": db}, run_id="failed-run")
    release_lease_on_failure.decorated_fn(context)
    with db.get_connection() as conn:
        assert lease.current(conn, "acme").live is False
        assert lease.acquire(conn, "acme", "next").run_id == "next"


def _poll(predicate, timeout: float = 20.0) -> bool:
    """Wait for an observed state (the renewer thread's writes), not for time to pass."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_G13_lease_renewed_while_a_step_runs_and_a_lost_lease_stops_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sync_pipeline.assets.lease import holding

    monkeypatch.setenv(lease.TTL_ENV, "1.5")
    db = SyncDuckDB(database=str(tmp_path / "state.duckdb"))
    with db.get_connection() as conn:
        first = lease.acquire(conn, "acme", "run-1")
    context = SimpleNamespace(
        partition_key="acme",
        run=SimpleNamespace(run_id="run-1"),
        instance=dg.DagsterInstance.ephemeral(),
        log=SimpleNamespace(warning=lambda _msg: None),
    )

    def current():
        with db.get_connection() as conn:
            return lease.current(conn, "acme")

    with holding(context, db) as held:
        assert _poll(lambda: current().renewed_at > first.renewed_at)  # renewed meanwhile
        held.check()

        def take_over() -> bool:  # the lease expired and another run took it
            try:
                with db.get_connection() as conn:
                    conn.execute("UPDATE sync.leases SET run_id = 'run-2' WHERE tenant = 'acme'")
                return True
            except duckdb.TransactionException:  # met the renewer's write; again
                return False

        assert _poll(take_over)
        assert _poll(held.lost.is_set)
        with pytest.raises(dg.Failure, match="lost its lease"):
            held.check()
    assert current().run_id == "run-2"  # a run-scoped lease is not released by its step
