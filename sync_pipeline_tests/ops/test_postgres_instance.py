"""The Dagster instance on PostgreSQL (``SYNC_DAGSTER_POSTGRES_URL``) and the deployment files.

Tests that need a PostgreSQL server take the ``postgres_url`` fixture (a fresh database per
session): they skip where none answers and fail where ``SYNC_REQUIRE_POSTGRES=1`` (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pytest
import yaml

from sync_pipeline_tests.ops.conftest import REPO_ROOT
from sync_pipeline_tests.ops.test_cli_run import _company, _linked_pairs_agree

DEPLOY = REPO_ROOT / "deploy"
DAGSTER = Path(sys.executable).parent / "dagster"
PASSWORD = "Pw-never-shown-7f3a"  # trust auth: the server ignores it, so it must not leak


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}")
    )


def _query(url: str, sql: str, params=()):
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def _recorded_run(url: str, tenant: str) -> tuple[str, str, int]:
    """(run id, status, events) of the tenant's one sync run, read from PostgreSQL itself."""
    ((run_id, status),) = _query(
        url,
        """SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id
           WHERE r.pipeline_name = 'sync_job' AND t.key = 'dagster/partition' AND t.value = %s""",
        (tenant,),
    )
    ((events,),) = _query(url, "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
    return run_id, status, events


def _no_sqlite_storage(home: Path) -> None:
    assert not list(home.rglob("*.db")), "runs/events/schedules must not fall back to SQLite"


# -- instance selection -----------------------------------------------------------------------
def test_instance_is_embedded_sqlite_by_default_and_postgres_when_the_url_is_set(
    tmp_path, monkeypatch, postgres_url
):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
    from dagster_postgres.schedule_storage import PostgresScheduleStorage

    from sync_pipeline.ops import instance as ops_instance

    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(ops_instance.POSTGRES_URL_ENV, raising=False)
    instance = ops_instance.dagster_instance()
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    finally:
        instance.dispose()

    monkeypatch.setenv(ops_instance.POSTGRES_URL_ENV, _with_password(postgres_url))
    instance = ops_instance.dagster_instance()  # our unedited file follows the setting
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # the driver dagster-postgres is tested with, whatever the libpq URL's scheme
        assert instance.run_storage._engine.dialect.driver == "psycopg2"
        # the queue and retries of the embedded instance hold here too
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.tag_concurrency_limits[0]["key"] == "dagster/partition"
        assert instance.run_retries_enabled
    finally:
        instance.dispose()
    assert PASSWORD not in (home / "dagster.yaml").read_text()
    tables = {name for (name,) in _query(postgres_url, "SELECT tablename FROM pg_tables")}
    assert {"runs", "event_logs", "instigators"} <= tables

    monkeypatch.delenv(ops_instance.POSTGRES_URL_ENV)
    instance = ops_instance.dagster_instance()  # and back to the embedded default
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    finally:
        instance.dispose()


def test_an_edited_instance_file_that_disagrees_with_the_setting_is_refused(tmp_path, monkeypatch):
    from sync_pipeline.ops import OperatorError
    from sync_pipeline.ops import instance as ops_instance

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # an operator's file
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(ops_instance.POSTGRES_URL_ENV, "postgresql://u@127.0.0.1:9/x")
    with pytest.raises(OperatorError, match="keeps runs in SQLite"):
        ops_instance.dagster_home()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_an_unreachable_instance_database_is_one_line_without_the_password(workspace):
    workspace.add_offline_tenant("acme")
    env = {
        **workspace.env,
        "SYNC_DAGSTER_POSTGRES_URL": f"postgresql://sync:{PASSWORD}@127.0.0.1:9/dagster",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sync-pipeline"), "tenants"],
        env=env,
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "postgresql://sync:***@127.0.0.1:9/dagster" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


# -- runs recorded in PostgreSQL --------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_a_cli_run_is_recorded_in_postgres_and_the_password_is_never_shown(
    workspace, tripletex_sandbox, svenn_sandbox, postgres_url, monkeypatch
):
    monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", _with_password(postgres_url))
    _company(workspace, tripletex_sandbox, svenn_sandbox, "acme")
    run = workspace.cli("run", "--tenant", "acme", "--full")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _linked_pairs_agree(workspace, "acme")

    _, status, events = _recorded_run(postgres_url, "acme")
    assert status == "SUCCESS" and events > 10
    listing = workspace.cli("tenants")  # reads the last run back from the instance
    assert listing.returncode == 0, listing.stderr
    (line,) = [line for line in listing.stdout.splitlines() if line.startswith("acme")]
    assert "success" in line

    home = workspace.root / "dagster_home"
    _no_sqlite_storage(home)
    shown = run.stdout + run.stderr + listing.stdout + listing.stderr
    assert PASSWORD not in shown
    assert PASSWORD not in (home / "dagster.yaml").read_text()
    ((leaks,),) = _query(
        postgres_url, "SELECT count(*) FROM event_logs WHERE event LIKE %s", (f"%{PASSWORD}%",)
    )
    assert leaks == 0  # nor in the run's events the UI shows
    with workspace.db() as conn:
        assert conn.execute("SELECT count(*) FROM sync.runs WHERE tenant = 'acme'").fetchone()[0]


@pytest.mark.integration
@pytest.mark.slow
def test_a_scheduled_run_in_its_own_process_is_recorded_in_postgres(
    workspace, tripletex_sandbox, svenn_sandbox, postgres_url, monkeypatch
):
    """As the daemon's run launcher starts it: the schedule's request, a new process that finds
    the instance through DAGSTER_HOME alone, every step in that process (issue 13)."""
    from sync_pipeline.ops import instance as ops_instance
    from sync_pipeline.schedules import incremental_sync_schedule
    from sync_pipeline.sensors import ensure_tenant_partitions

    url = _with_password(postgres_url)
    _company(workspace, tripletex_sandbox, svenn_sandbox, "nord", seed="world", world_seed=11)
    for name in ("SYNC_TENANTS_FILE", "SYNC_DUCKDB_PATH", "DAGSTER_HOME"):
        monkeypatch.setenv(name, workspace.env[name])
    monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", url)
    instance = ops_instance.dagster_instance()
    try:
        ensure_tenant_partitions(instance, ["nord"])
        (request,) = [
            r
            for r in incremental_sync_schedule(dg.build_schedule_context(instance=instance))
            if r.partition_key == "nord"
        ]
    finally:
        instance.dispose()

    launched = subprocess.run(
        [
            str(DAGSTER),
            *("job", "execute", "-m", "sync_pipeline.definitions", "-j", "sync_job"),
            *("--tags", json.dumps({**request.tags, "dagster/partition": "nord"})),
        ],
        cwd=REPO_ROOT,
        env={**workspace.env, "SYNC_DAGSTER_POSTGRES_URL": url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert PASSWORD not in launched.stdout + launched.stderr

    run_id, status, _ = _recorded_run(postgres_url, "nord")
    assert status == "SUCCESS"
    pids = _query(
        postgres_url,
        "SELECT DISTINCT event::json -> 'dagster_event' ->> 'pid' FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'STEP_START'",
        (run_id,),
    )
    assert len(pids) == 1 and pids[0][0] != str(os.getpid())  # the launched process
    _no_sqlite_storage(workspace.root / "dagster_home")
    assert _linked_pairs_agree(workspace, "nord") > 0


# -- the switch that makes these tests mandatory ----------------------------------------------
def test_ci_makes_the_postgres_tests_fail_instead_of_skipping(tmp_path):
    """Where no PostgreSQL answers, the fixture skips — unless SYNC_REQUIRE_POSTGRES=1, which
    .ci/run sets, so CI can never pass without these tests."""
    assert "SYNC_REQUIRE_POSTGRES=1" in (REPO_ROOT / ".ci" / "run").read_text()
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_postgres(postgres_url):\n    pass\n")
    (tmp_path / "conftest.py").write_text(
        "from sync_pipeline_tests.conftest import postgres_url  # noqa: F401\n"
    )
    # the probe imports the suite's conftest from a temporary folder: the repository must be on
    # its path (the package install carries sync_pipeline, not its tests)
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "SYNC_TEST_POSTGRES": "host=127.0.0.1 port=9 dbname=test",
    }
    env.pop("CI", None)

    def outcome(require: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(probe)],
            env={**env, "SYNC_REQUIRE_POSTGRES": require},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout + result.stderr

    assert "1 skipped" in outcome("")
    assert "1 error" in outcome("1")


# -- the deployment on paper ------------------------------------------------------------------
def test_the_production_instance_file_is_the_cli_s_and_dagster_accepts_it(tmp_path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    from sync_pipeline.dagster_storage import PostgresStorage
    from sync_pipeline.ops import instance as ops_instance

    documented = (DEPLOY / "dagster.yaml").read_text()
    assert yaml.safe_load(documented) == yaml.safe_load(ops_instance.DAGSTER_YAML_POSTGRES)
    (tmp_path / "dagster.yaml").write_text(documented)
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any key Dagster rejects
    assert config["storage"]["custom"]["class"] == "PostgresStorage"
    storage = InstanceRef.from_dir(str(tmp_path)).storage_data
    assert validate_config(PostgresStorage.config_type(), storage.config_dict).success


def _key_paths(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _key_paths(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for item in node:
            yield from _key_paths(item, f"{prefix}[]")
    else:
        yield prefix


def test_the_helm_values_use_only_the_chart_s_keys():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    known = [
        line.strip()
        for line in (DEPLOY / "helm" / "chart-keys.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    exact = {k for k in known if not k.endswith(".*")}
    free = tuple(k[:-2] for k in known if k.endswith(".*"))
    unknown = [p for p in _key_paths(values) if p not in exact and not p.startswith(free)]
    assert unknown == []

    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {
        "key": "dagster/partition",  # what every sync run is tagged with: one run per tenant
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in queue["tagConcurrencyLimits"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in values["postgresql"]  # from the secret only


def test_the_secrets_the_values_name_are_in_the_example_without_a_real_secret():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    secrets = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((DEPLOY / "helm" / "secrets.example.yaml").read_text())
        if doc
    }
    assert all(doc["kind"] == "Secret" for doc in secrets.values())
    named = (
        {values["global"]["postgresqlSecretName"]}
        | {
            ref["name"]
            for deployment in values["dagster-user-deployments"]["deployments"]
            for ref in deployment["envSecrets"]
        }
        | {ref["name"] for ref in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    )
    assert named <= set(secrets)
    assert "postgresql-password" in secrets[values["global"]["postgresqlSecretName"]]["stringData"]
    assert {v for doc in secrets.values() for v in doc["stringData"].values()} == {"CHANGE-ME"}


def test_the_image_installs_the_pinned_package_and_serves_the_code_location():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile
    assert '"sync_pipeline.definitions"' in dockerfile and '"grpc"' in dockerfile
    pinned = {
        line.split("==")[0].lower()
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
    }
    assert {"dagster-postgres", "psycopg2-binary"} <= pinned
