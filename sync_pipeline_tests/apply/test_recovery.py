"""Creates a crashed run left without outcome are found by key and linked, not sent again."""

from __future__ import annotations

import logging

import pytest

from sync_pipeline.assets.apply import wal
from sync_pipeline.assets.apply.recovery import recover

CRASHED, NEXT = "run-crashed", "run-next"


def _intent(env, seq: int, target: str, key: str, *, svenn_id=None, tripletex_id=None) -> None:
    with env.db.get_connection() as conn:
        wal.record_intents(
            conn,
            env.tenant,
            CRASHED,
            [wal.Intent(seq, "customer", target, "create", svenn_id, tripletex_id, key, None, {})],
        )


def _recover(env) -> dict[str, int]:
    return recover(
        tenant=env.tenant,
        run_id=NEXT,
        connect=env.db.get_connection,
        tripletex=env.tripletex,
        svenn=env.svenn,
        log=logging.getLogger("test"),
    )


@pytest.mark.lake
def test_G5_creates_that_landed_before_the_crash_are_linked_by_key(apply_env):
    env = apply_env
    # the crashed run logged its intents; two of the creates reached the APIs
    _intent(env, 1, "tripletex", "501", svenn_id=21)
    _intent(env, 2, "svenn", "601", tripletex_id=900)
    _intent(env, 3, "tripletex", "502", svenn_id=22)
    (landed,) = env.tripletex.post_list("/customer/list", [{"name": "A", "customerNumber": 501}])
    in_svenn = env.svenn.create("customers", {"name": "B", "customer_number": "601"})

    counts = _recover(env)

    assert counts == {"linked": 2, "not_found": 1}
    assert {link[:4] for link in env.links("customer")} == {
        (21, landed["id"], "svenn", "active"),
        (in_svenn["id"], 900, "tripletex", "active"),
    }
    # recovered links have no base: the next run merges them as first matches (G3)
    assert [link[4] for link in env.links("customer")] == [None, None]
    assert env.query(
        "SELECT seq, state, result_id FROM sync.operations WHERE run_id = ? ORDER BY seq", CRASHED
    ) == [(1, "done", landed["id"]), (2, "done", in_svenn["id"]), (3, "failed", None)]
    assert _recover(env) == {}  # settled once, never again


def test_G5_a_create_planned_before_recovery_linked_its_record_is_skipped(apply_env):
    env = apply_env
    _intent(env, 1, "tripletex", "501", svenn_id=21)
    env.tripletex.post_list("/customer/list", [{"name": "A", "customerNumber": 501}])
    writes_before = env.tripletex_sandbox.stats(env.tripletex_key)["writes"]
    # the next run's plan was computed from snapshots taken before recovery
    env.plan(
        NEXT,
        {
            "entity": "customer",
            "target": "tripletex",
            "operation": "create",
            "svenn_id": 21,
            "key": "501",
            "payload": {"name": "A", "customerNumber": 501},
        },
    )
    _recover(env)
    report = env.execute(NEXT)

    assert report.states["skipped"] == 1
    assert env.tripletex_sandbox.stats(env.tripletex_key)["writes"] == writes_before
    numbers = env.tripletex.list_all("/customer", {"customerAccountNumber": 501}, "id")
    assert len(numbers) == 1  # no duplicate


def test_G5_recovery_is_postponed_while_the_api_is_down(apply_env):
    env = apply_env
    _intent(env, 1, "tripletex", "501", svenn_id=21)
    env.tripletex_sandbox.add_fault(r"/customer$", method="GET", status=503, count=1000)

    assert _recover(env) == {"postponed": 1}
    assert env.query("SELECT state FROM sync.operations") == [("intent",)]
