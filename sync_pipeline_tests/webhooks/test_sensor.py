"""The webhooks sensor: debounced, one run per tenant, events consumed only by a run that
succeeded (a failed run's events go into the next one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from sync_pipeline import lease
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import migrate
from sync_pipeline.webhooks import spool
from sync_pipeline.webhooks.sensor import DEBOUNCE_S, MAX_WAIT_S, WEBHOOK_BATCH_TAG, evaluate


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, ["acme", "beta"])
        yield instance


@pytest.fixture
def state():
    conn = duckdb.connect(":memory:")
    migrate(conn)
    yield conn
    conn.close()


@pytest.fixture
def spool_file(tmp_path):
    return str(tmp_path / "spool.sqlite")


def receive(spool_file, tenant="acme", record_id=1, action="update"):
    with spool.connect(spool_file) as conn:
        spool.store(
            conn,
            spool.Event(
                "svenn",
                tenant,
                str(uuid.uuid4()),
                f"customer.{action}d",
                "customer",
                action,
                record_id,
                2,
                "{}",
            ),
        )


def received_at(state) -> datetime:
    return state.execute("SELECT max(received_at) FROM sync.webhook_events").fetchone()[0]


def finish(instance, request: dg.RunRequest, status: dg.DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="sync_job",
            run_id=run_id,
            tags={**request.tags, lease.PARTITION_TAG: request.partition_key},
            status=status,
        )
    )
    return run_id


def unconsumed(state) -> int:
    return state.execute(
        "SELECT count(*) FROM sync.webhook_events WHERE consumed_at IS NULL"
    ).fetchone()[0]


def test_events_within_the_debounce_window_make_one_run(instance, state, spool_file):
    start = datetime.now(UTC)
    for i in range(5):
        receive(spool_file, record_id=i + 1)
    first = evaluate(state, instance, start, spool_file=spool_file)
    assert first.requests == []  # still arriving
    quiet = received_at(state) + timedelta(seconds=DEBOUNCE_S + 0.1)
    (request,) = evaluate(state, instance, quiet, spool_file=spool_file).requests
    assert request.partition_key == "acme" and request.tags[WEBHOOK_BATCH_TAG]
    assert request.tags["sync_pipeline/origin"] == "sensor:webhooks"
    assert evaluate(state, instance, quiet, spool_file=spool_file).requests == []


def test_a_steady_stream_still_gets_a_run_after_the_longest_wait(instance, state, spool_file):
    start = datetime.now(UTC)
    receive(spool_file)
    assert evaluate(state, instance, start, spool_file=spool_file).requests == []
    oldest = received_at(state)
    receive(spool_file, record_id=2)
    assert evaluate(state, instance, start, spool_file=spool_file).requests == []
    # a new event just arrived, but the oldest has waited long enough
    now = max(received_at(state), oldest + timedelta(seconds=MAX_WAIT_S))
    assert len(evaluate(state, instance, now, spool_file=spool_file).requests) == 1


def test_events_are_consumed_only_when_their_run_succeeded(instance, state, spool_file):
    receive(spool_file)
    now = datetime.now(UTC) + timedelta(seconds=DEBOUNCE_S + 1)
    (request,) = evaluate(state, instance, now, spool_file=spool_file).requests
    finish(instance, request, dg.DagsterRunStatus.FAILURE)
    retry = evaluate(state, instance, now + timedelta(seconds=1), spool_file=spool_file).requests
    assert unconsumed(state) == 1
    (request2,) = retry  # the failed run's events went into a new run
    assert request2.run_key != request.run_key
    finish(instance, request2, dg.DagsterRunStatus.SUCCESS)
    assert (
        evaluate(state, instance, now + timedelta(seconds=2), spool_file=spool_file).requests == []
    )
    assert unconsumed(state) == 0


def test_no_run_while_one_of_the_tenant_is_running_or_holds_the_lease(instance, state, spool_file):
    receive(spool_file, tenant="acme")
    receive(spool_file, tenant="beta")
    now = datetime.now(UTC) + timedelta(seconds=DEBOUNCE_S + 1)
    busy = dg.RunRequest(partition_key="acme", tags={"x": "y"})
    finish(instance, busy, dg.DagsterRunStatus.STARTED)
    lease.acquire(state, "beta", "a-cli-run", holder="elsewhere:1")  # e.g. a CLI run
    assert evaluate(state, instance, now, spool_file=spool_file).requests == []
    assert unconsumed(state) == 2
    lease.release(state, "a-cli-run", "beta")
    (request,) = evaluate(state, instance, now, spool_file=spool_file).requests
    assert request.partition_key == "beta"


def test_a_tenant_that_is_not_a_partition_waits(instance, state, spool_file):
    receive(spool_file, tenant="gamma")
    now = datetime.now(UTC) + timedelta(seconds=DEBOUNCE_S + 1)
    assert evaluate(state, instance, now, spool_file=spool_file).requests == []
    assert unconsumed(state) == 1


def test_consumed_events_are_forgotten_after_a_week_pending_ones_never(instance, state, spool_file):
    receive(spool_file, record_id=1)
    receive(spool_file, record_id=2)
    evaluate(state, instance, datetime.now(UTC) - timedelta(hours=1), spool_file=spool_file)
    state.execute(
        "UPDATE sync.webhook_events SET consumed_at = now() - INTERVAL 8 DAY WHERE record_id = 1"
    )
    evaluate(state, instance, datetime.now(UTC) - timedelta(hours=1), spool_file=spool_file)
    rows = state.execute("SELECT record_id FROM sync.webhook_events").fetchall()
    assert rows == [(2,)]
