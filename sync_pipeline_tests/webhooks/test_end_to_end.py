"""End to end without any scheduled run: a change in one sandbox → its webhook → the receiver →
the sensor's run request → the run (with the request's tags) → the change in the other
sandbox; the events are consumed once that run succeeded. Both directions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from sync_pipeline.sensors import ensure_tenant_partitions
from sync_pipeline.tenants import load_tenants
from sync_pipeline.webhooks import spool, subscriptions
from sync_pipeline.webhooks.sensor import DEBOUNCE_S, WEBHOOK_BATCH_TAG, evaluate
from sync_pipeline_tests.ops.conftest import Workspace

from .conftest import SVENN_SECRET, TX_SECRET, ReceiverServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def sensor_tick(workspace: Workspace, spool_file: Path):
    """One evaluation of the sensor against the workspace's store and instance, as if the
    debounce window had passed."""
    instance = dg.DagsterInstance.from_config(workspace.env["DAGSTER_HOME"])
    try:
        ensure_tenant_partitions(instance, ["acme"])
        with workspace.db() as conn:
            with spool.connect(spool_file) as spooled:
                spool.move_to_store(spooled, conn)
            newest = conn.execute("SELECT max(received_at) FROM sync.webhook_events").fetchone()[0]
            return evaluate(
                conn, instance, newest + timedelta(seconds=DEBOUNCE_S + 1), spool_file=spool_file
            )
    finally:
        instance.dispose()


def launch(workspace: Workspace, request: dg.RunRequest | None) -> None:
    """The requested run (None: a plain incremental run, as the CLI starts), in this process
    and in the workspace's instance, as the daemon would carry it out."""
    from sync_pipeline.definitions import build_defs

    # the workspace's tenants file: the module-level ``defs`` took the path in the
    # environment when another test of this worker first imported it
    defs = build_defs(tenants_file=workspace.env["SYNC_TENANTS_FILE"])

    instance = dg.DagsterInstance.from_config(workspace.env["DAGSTER_HOME"])
    try:
        ensure_tenant_partitions(instance, ["acme"])
        result = defs.resolve_job_def("sync_job").execute_in_process(
            instance=instance,
            partition_key=request.partition_key if request else "acme",
            tags=request.tags if request else {},
            raise_on_error=False,
        )
    finally:
        instance.dispose()
    assert result.success


def covered(workspace: Workspace, batches: list[str]) -> tuple[int, int]:
    """(events of these batches, of which consumed)."""
    with workspace.db() as conn:
        return conn.execute(
            "SELECT count(*), count(consumed_at) FROM sync.webhook_events"
            " WHERE list_contains(?, batch)",
            [batches],
        ).fetchone()


def linked(workspace: Workspace, entity: str) -> tuple[int, int]:
    with workspace.db() as conn:
        return conn.execute(
            "SELECT svenn_id, tripletex_id FROM sync.links WHERE tenant = 'acme'"
            " AND entity = ? AND state = 'active' ORDER BY svenn_id LIMIT 1",
            [entity],
        ).fetchone()


def test_a_change_on_either_side_reaches_the_other_through_receiver_sensor_and_run(
    tmp_path, tripletex_sandbox, svenn_sandbox, monkeypatch
):
    workspace = Workspace(tmp_path)
    for name in ("SYNC_TENANTS_FILE", "SYNC_DUCKDB_PATH", "DAGSTER_HOME"):
        monkeypatch.setenv(name, workspace.env[name])
    workspace.add_tenant(
        "acme",
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_sandbox.new_company(seed="demo"),
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(seed="demo"),
        webhooks={"tripletex_secret": TX_SECRET, "svenn_secret": SVENN_SECRET},
    )
    (workspace.root / "dagster_home").mkdir()
    launch(workspace, None)  # the first sync links the two worlds
    tenant = load_tenants(workspace.root / "tenants.yaml")["acme"]
    spool_file = workspace.root / "spool.sqlite"
    svenn, tripletex = tenant.svenn_client(), tenant.tripletex_client()

    with ReceiverServer(workspace.root / "tenants.yaml", spool_file) as receiver:
        subscriptions.ensure(tenant, receiver.url)

        # Svenn → Tripletex: a customer edited in Svenn
        svenn_id, tripletex_id = linked(workspace, "customer")
        svenn.update("customers", svenn_id, {"name": "Webhook Rør AS"})
        assert receiver.wait_for(1, where=lambda r: r[0] == "svenn" and r[5] == svenn_id)
        (request,) = sensor_tick(workspace, spool_file).requests
        assert request.partition_key == "acme" and WEBHOOK_BATCH_TAG in request.tags
        launch(workspace, request)
        batches = [request.tags[WEBHOOK_BATCH_TAG]]
        customer = tripletex.get(f"/customer/{tripletex_id}", fields="id,name")
        assert customer["name"] == "Webhook Rør AS"

        # Tripletex → Svenn: a project edited in Tripletex
        svenn_pid, tripletex_pid = linked(workspace, "project")
        project = tripletex.get(f"/project/{tripletex_pid}", fields="id,version")
        tripletex.put(
            f"/project/{tripletex_pid}",
            {"id": tripletex_pid, "version": project["version"], "name": "Webhook-prosjekt"},
        )
        assert receiver.wait_for(
            1, where=lambda r: r[0] == "tripletex" and r[3] == "project" and r[5] == tripletex_pid
        )
        tick = sensor_tick(workspace, spool_file)
        (request,) = tick.requests
        launch(workspace, request)
        batches.append(request.tags[WEBHOOK_BATCH_TAG])
        assert svenn.get("projects", svenn_pid)["name"] == "Webhook-prosjekt"

    sensor_tick(workspace, spool_file)  # settles the last run: it succeeded
    total, consumed = covered(workspace, batches)
    assert total >= 2 and consumed == total
