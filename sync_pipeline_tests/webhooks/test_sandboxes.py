"""Against both sandboxes: subscriptions made and repaired by the sync, deliveries reaching the
receiver, and the targeted read by id that never takes a deletion event for a fact (G7)."""

from __future__ import annotations

import json

import duckdb
import pytest
import requests
import yaml

from sync_pipeline.resources.storage import migrate
from sync_pipeline.sandbox.tripletex.events import DEFAULT_DISABLE_AFTER
from sync_pipeline.tenants import load_tenants
from sync_pipeline.webhooks import spool, subscriptions, targeted

from .conftest import SVENN_SECRET, TX_SECRET, ReceiverServer, tenants_yaml, tripletex_delivery

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant_files(tmp_path, tripletex_sandbox, svenn_sandbox):
    tx_key = tripletex_sandbox.new_company(seed="empty")
    sv_key = svenn_sandbox.new_company(seed="empty")

    class Side:
        def __init__(self, sandbox, key):
            self.base_url, self.key = sandbox.base_url, key
            self.employee_token, self.consumer_token = key, "test-consumer"

    data = tenants_yaml(
        {"acme": {"tripletex_secret": TX_SECRET, "svenn_secret": SVENN_SECRET}},
        {"tripletex": Side(tripletex_sandbox, tx_key), "svenn": Side(svenn_sandbox, sv_key)},
    )
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, tmp_path / "spool.sqlite"


def test_subscribe_is_idempotent_and_reenables_a_disabled_tripletex_subscription(
    tenant_files, tripletex_sandbox
):
    path, _ = tenant_files
    tenant = load_tenants(path)["acme"]
    dead = "http://127.0.0.1:9"  # nothing listens: every delivery fails
    first = subscriptions.ensure(tenant, dead)
    assert sorted(c.what for c in first) == ["created"] * 10  # nine Tripletex events, one Svenn
    again = subscriptions.ensure(tenant, dead)
    assert {c.what for c in again} == {"kept"}
    control = f"{tripletex_sandbox.root_url}/_sandbox/webhooks"
    requests.post(control, json={"disable_after": 1}, timeout=10).raise_for_status()
    try:
        client = tenant.tripletex_client()
        client.post("/customer", {"name": "Nobody hears AS"})
        for _ in range(500):  # the one failed delivery disables customer.create
            status = subscriptions.status(tenant)["tripletex"]["customer.create"]
            if status != "ACTIVE":
                break
        assert status == "DISABLED_TOO_MANY_ERRORS"
    finally:
        requests.post(
            control, json={"disable_after": DEFAULT_DISABLE_AFTER}, timeout=10
        ).raise_for_status()
    repaired = subscriptions.ensure(tenant, dead)
    reenabled = [c.detail.split()[0] for c in repaired if c.what == "re-enabled"]
    assert reenabled == ["customer.create"]
    assert set(subscriptions.status(tenant)["tripletex"].values()) == {"ACTIVE"}


def test_changes_in_both_sandboxes_reach_the_receiver_signed_and_spooled(tenant_files):
    path, spool_file = tenant_files
    tenant = load_tenants(path)["acme"]
    with ReceiverServer(path, spool_file) as receiver:
        subscriptions.ensure(tenant, receiver.url)
        customer = tenant.svenn_client().create("customers", {"name": "Fjord Rør AS"})
        project = tenant.tripletex_client().post(
            "/project", {"name": "Bad", "startDate": "2026-01-05", "projectManager": {"id": 1}}
        )
        rows = receiver.wait_for(2)
    got = {(r[0], r[3], r[4], r[5]) for r in rows}
    assert got == {
        ("svenn", "customer", "create", customer["id"]),
        ("tripletex", "project", "create", project["id"]),
    }


def test_a_deletion_event_for_a_record_that_still_exists_deletes_nothing(tenant_files):
    path, spool_file = tenant_files
    tenant = load_tenants(path)["acme"]
    client = tenant.tripletex_client()
    alive = client.post("/customer", {"name": "Still here AS"})
    gone = client.post("/customer", {"name": "Really gone AS"})
    client.delete(f"/customer/{gone['id']}")
    state = duckdb.connect(":memory:")
    migrate(state)
    with spool.connect(spool_file) as conn:
        for record_id in (alive["id"], gone["id"]):
            body, headers = tripletex_delivery("customer.delete", record_id=record_id)
            spool.store(
                conn,
                spool.Event(
                    "tripletex",
                    "acme",
                    headers["idempotency-key"],
                    "customer.delete",
                    "customer",
                    "delete",
                    record_id,
                    None,
                    body.decode(),
                ),
            )
        spool.move_to_store(conn, state)
    state.execute("UPDATE sync.webhook_events SET batch = 'b1'")
    changes = targeted.changes_of_batch(state, "acme", "b1")
    read = targeted.read_tripletex(
        client,
        "customer",
        changes.of("tripletex", "customer"),
        fields="id,name,version",
        deletions=changes.deletions[("tripletex", "customer")],
    )
    assert read.gone == [gone["id"]]  # not returned by the lookup by id
    assert read.deletion_not_confirmed == [alive["id"]]
    assert [r["name"] for r in read.records] == ["Still here AS"]
    assert read.requests == 2
    assert json.loads(json.dumps(client.get(f"/customer/{alive['id']}")))["name"] == "Still here AS"
