"""The DuckLake state store (``SYNC_STORE=ducklake``): many runs write at once, analysts
read without blocking them, and one tenant is still synced by one run at a time (G13)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import uuid

import duckdb
import pytest

from sync_pipeline import lease
from sync_pipeline.assets.maintenance import maintain
from sync_pipeline.resources import backends
from sync_pipeline.tenants import load_tenants
from sync_pipeline_tests.conftest import REPO_ROOT
from sync_pipeline_tests.store.conftest import add_company, finish, query, start_run

OTHER_HOST = "another-host:4242"  # a holder this host cannot prove dead


def _links_agree(workspace, tenant: str) -> int:
    """Every active customer link of the tenant joins two of its companies' records with one
    name, and no id is in two active links (the uniqueness the writes keep, G13)."""
    config = load_tenants(workspace.root / "tenants.yaml")[tenant]
    svenn = {c["id"]: c for c in config.svenn_client().list_all("customers")}
    client = config.tripletex_client()
    tripletex = {
        c["id"]: c
        for inactive in (False, True)
        for c in client.list_all("/customer", params={"isInactive": inactive}, fields="id,name")
    }
    links = query(
        "SELECT svenn_id, tripletex_id FROM sync.links "
        "WHERE tenant = ? AND entity = 'customer' AND state = 'active'",
        tenant,
    )
    assert links
    for svenn_id, tripletex_id in links:
        assert svenn[svenn_id]["name"] == tripletex[tripletex_id]["name"]
    assert len({s for s, _ in links}) == len({t for _, t in links}) == len(links)
    return len(links)


def test_G13_two_tenants_synced_at_once_in_separate_processes_both_end_correct(
    lake, workspace, tripletex_sandbox, svenn_sandbox
):
    for tenant in ("north", "south"):
        add_company(workspace, tripletex_sandbox, svenn_sandbox, tenant)
    procs = {tenant: start_run(workspace, tenant) for tenant in ("north", "south")}
    results = {tenant: finish(proc) for tenant, proc in procs.items()}

    for tenant, result in results.items():
        assert result["success"], result["stderr"][-3000:]
        assert _links_agree(workspace, tenant) > 0
    runs = query("SELECT tenant, outcome, started_at, finished_at FROM sync.runs ORDER BY 1")
    assert [(t, o) for t, o, _, _ in runs] == [("north", "success"), ("south", "success")]
    # they ran at the same time: each started before the other finished (no writer waited
    # for the other's end, as on the one-file store)
    (_, _, start_a, end_a), (_, _, start_b, end_b) = runs
    assert start_a < end_b and start_b < end_a
    assert query("SELECT count(*) FROM sync.errors WHERE code = 'RUN_ALREADY_ACTIVE'") == [(0,)]

    # support's question on the lake too: `explain` tells an open error's story from the lake
    entity, svenn_id, tripletex_id, code, message = query(
        "SELECT entity, svenn_id, tripletex_id, code, message FROM sync.errors "
        "WHERE tenant = 'north' AND resolved_at IS NULL AND entity IN "
        "('project', 'customer', 'employee') ORDER BY code, svenn_id, tripletex_id LIMIT 1"
    )[0]
    which = ["--svenn-id", str(svenn_id)] if svenn_id else ["--tripletex-id", str(tripletex_id)]
    explained = subprocess.run(
        [sys.executable, "-m", "sync_pipeline.cli", "explain", "--tenant", "north",
         "--entity", entity, *which, "--format", "json"],
        cwd=REPO_ROOT, env=workspace.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr[-2000:]
    story = json.loads(explained.stdout)
    assert {(e["code"], e["message"]) for e in story["open_errors"]} >= {(code, message)}


def test_an_analysts_read_only_attach_during_a_run_neither_blocks_nor_fails_it(
    lake, workspace, tripletex_sandbox, svenn_sandbox
):
    add_company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    analyst = backends.connect_lake(lake, read_only=True)  # the README's ATTACH … (READ_ONLY)
    try:
        proc = start_run(workspace, "acme")
        # the analyst opens a transaction as soon as the run holds its tenant and keeps it
        # open, reading sync.errors, until the run has committed everything and ended
        while proc.poll() is None and not query(
            "SELECT 1 FROM sync.leases WHERE tenant = 'acme' AND released_at IS NULL"
        ):
            analyst.execute("SELECT count(*) FROM sync.errors").fetchall()
        analyst.execute("BEGIN TRANSACTION")
        seen = analyst.execute("SELECT count(*) FROM sync.runs").fetchall()
        while proc.poll() is None:
            analyst.execute("SELECT count(*) FROM sync.errors WHERE tenant = 'acme'").fetchall()
        result = finish(proc)
        assert result["success"], result["stderr"][-3000:]
        # the run committed while the analyst's transaction stayed open on its snapshot
        assert analyst.execute("SELECT count(*) FROM sync.runs").fetchall() == seen == [(0,)]
        analyst.execute("COMMIT")
        assert analyst.execute(
            "SELECT outcome FROM sync.runs WHERE tenant = 'acme'"
        ).fetchall() == [("success",)]
        with pytest.raises(duckdb.Error, match=r"read-only|read only"):
            analyst.execute("DELETE FROM sync.errors")  # an analyst cannot write
    finally:
        analyst.close()


def test_G13_a_second_process_running_the_same_tenant_is_refused_by_the_lease(
    lake, workspace, tripletex_sandbox, svenn_sandbox
):
    add_company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    with backends.open_store() as conn:  # a run on another machine holds the tenant
        lease.acquire(conn, "acme", "run-elsewhere", holder=OTHER_HOST)
    result = finish(start_run(workspace, "acme"))

    assert not result["success"]
    assert query("SELECT outcome FROM sync.runs WHERE tenant = 'acme'") == [("refused",)]
    assert query(
        "SELECT code, details->>'$.active_run_id' FROM sync.errors "
        "WHERE tenant = 'acme' AND resolved_at IS NULL AND code = 'RUN_ALREADY_ACTIVE'"
    ) == [("RUN_ALREADY_ACTIVE", "run-elsewhere")]
    assert query("SELECT count(*) FROM sync.extracts WHERE tenant = 'acme'") == [(0,)]
    assert query("SELECT run_id FROM sync.leases WHERE tenant = 'acme'") == [("run-elsewhere",)]


def _contend(lake, barrier, run_id: str, results) -> None:
    from sync_pipeline_tests.conftest import LakeFactory  # noqa: F401 - the child's imports

    with backends.open_lake(config=lake) as conn:
        barrier.wait()
        try:
            lease.acquire(conn, "acme", run_id, holder=f"{OTHER_HOST}-{run_id}")
            results.put((run_id, "acquired"))
        except lease.LeaseRefused:
            results.put((run_id, "refused"))


def test_G13_processes_racing_for_a_new_tenant_on_one_lake_get_one_lease(lake):
    """On a lake two guarded appends of one key both commit, so the lease lives in the
    catalog's PostgreSQL with its real key: of four processes released at once, one wins."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    runs = [f"run-{i}" for i in range(4)]
    procs = [spawn.Process(target=_contend, args=(lake, barrier, r, results)) for r in runs]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=120) for _ in runs)
    for proc in procs:
        proc.join(timeout=60)
    assert sorted(outcomes.values()) == ["acquired", "refused", "refused", "refused"]
    winner = next(r for r, o in outcomes.items() if o == "acquired")
    assert query("SELECT run_id FROM sync.leases WHERE tenant = 'acme'") == [(winner,)]


def test_maintenance_merges_small_files_and_expires_snapshots_keeping_the_error_history(lake):
    with backends.open_store() as conn:
        for n in range(6):  # six commits, six small files: as runs of many tenants leave them
            conn.execute(
                "INSERT INTO sync.errors (tenant, code, severity, message, first_seen_at, "
                "last_seen_at, resolved_at, run_id) VALUES (?, 'API_REJECTED', 'error', 'm', "
                "now(), now(), CASE WHEN ? THEN now() END, ?)",
                [f"t{n}", n % 2 == 0, str(uuid.uuid4())],
            )
        before = conn.execute("SELECT * FROM sync.errors ORDER BY tenant").fetchall()
        done = maintain(conn, days=0)
        after = conn.execute("SELECT * FROM sync.errors ORDER BY tenant").fetchall()
    assert after == before  # resolved errors included: the history is rows, not snapshots
    assert done["backend"] == "ducklake"
    assert done["data_files_after"] < done["data_files_before"]
    assert done["snapshots_expired"] > 0


def test_maintenance_on_the_duckdb_file_is_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv(backends.STORE_ENV, raising=False)
    with backends.open_store(database=str(tmp_path / "state.duckdb")) as conn:
        conn.execute("INSERT INTO sync.approvals VALUES ('acme', 'go_live', 'me', now(), NULL)")
        assert maintain(conn)["action"] == "CHECKPOINT"
    assert (tmp_path / "state.duckdb").exists() and not (tmp_path / "state.duckdb.wal").exists()


def test_lake_ddl_drops_what_ducklake_cannot_take_and_nothing_else():
    ddl = (
        "CREATE TABLE IF NOT EXISTS sync.x (\n  tenant VARCHAR PRIMARY KEY, n INTEGER UNIQUE,"
        " at TIMESTAMPTZ DEFAULT now(), k INTEGER DEFAULT 3 NOT NULL, PRIMARY KEY (tenant, n)\n)"
    )
    assert backends.lake_ddl(ddl) == (
        "CREATE TABLE IF NOT EXISTS sync.x (\n  tenant VARCHAR, n INTEGER,"
        " at TIMESTAMPTZ, k INTEGER DEFAULT 3 NOT NULL\n)"
    )
    assert backends.lake_ddl("CREATE UNIQUE INDEX i ON sync.x (tenant)") is None


def test_an_unknown_store_or_a_lake_without_its_catalog_is_refused_with_the_setting(monkeypatch):
    monkeypatch.setenv(backends.STORE_ENV, "sqlite")
    with pytest.raises(backends.StoreConfigError, match="SYNC_STORE='sqlite'"):
        backends.store_kind()
    monkeypatch.setenv(backends.STORE_ENV, "ducklake")
    monkeypatch.delenv(backends.CATALOG_ENV, raising=False)
    with pytest.raises(backends.StoreConfigError, match=backends.CATALOG_ENV):
        backends.LakeConfig.from_env()
