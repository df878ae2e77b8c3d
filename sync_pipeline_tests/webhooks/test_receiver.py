"""The receiver: signatures verified, unknown tenants and bad bodies refused with nothing
stored, duplicates acknowledged but kept once, a burst stored without loss."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from sync_pipeline.resources.storage import migrate
from sync_pipeline.webhooks import spool

from .conftest import spooled, svenn_delivery, tripletex_delivery


def post(receiver, system, tenant, delivery):
    body, headers = delivery
    return receiver.post(
        f"/webhooks/{system}/{tenant}",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )


def test_a_signed_tripletex_delivery_is_stored(receiver, spool_file):
    delivery = tripletex_delivery("project.update", record_id=11)
    resp = post(receiver, "tripletex", "acme", delivery)
    assert (resp.status_code, resp.json()) == (200, {"status": "stored"})
    key = delivery[1]["idempotency-key"]
    assert spooled(spool_file) == [("tripletex", "acme", key, "project", "update", 11, 3)]


def test_a_signed_svenn_delivery_is_stored(receiver, spool_file):
    delivery = svenn_delivery("customer.deleted", record_id=9, version=4)
    resp = post(receiver, "svenn", "acme", delivery)
    assert resp.status_code == 200
    did = delivery[1]["Svenn-Delivery"]
    assert spooled(spool_file) == [("svenn", "acme", did, "customer", "delete", 9, 4)]


@pytest.mark.parametrize(
    ("system", "delivery"),
    [
        ("tripletex", tripletex_delivery(secret="another-secret-1")),
        ("svenn", svenn_delivery(secret="another-secret-0123456")),
    ],
)
def test_a_wrongly_signed_delivery_is_refused_401_and_not_stored(
    receiver, spool_file, system, delivery
):
    assert post(receiver, system, "acme", delivery).status_code == 401
    assert spooled(spool_file) == []


def test_an_unsigned_or_tampered_delivery_is_refused_401(receiver, spool_file):
    body, headers = tripletex_delivery()
    unsigned = {k: v for k, v in headers.items() if k != "x-request-signature"}
    assert post(receiver, "tripletex", "acme", (body, unsigned)).status_code == 401
    tampered = body.replace(b'"id": 7', b'"id": 8')
    assert post(receiver, "tripletex", "acme", (tampered, headers)).status_code == 401
    body, headers = svenn_delivery()
    other_key = {**headers, "Svenn-Delivery": "not-the-signed-one"}
    # the body's id is signed; a header that differs from it is refused as a bad body
    assert post(receiver, "svenn", "acme", (body, other_key)).status_code == 400
    assert spooled(spool_file) == []


def test_an_unknown_tenant_or_one_without_the_systems_secret_is_404(receiver, spool_file):
    assert post(receiver, "tripletex", "nobody", tripletex_delivery()).status_code == 404
    assert post(receiver, "tripletex", "svennonly", tripletex_delivery()).status_code == 404
    assert post(receiver, "svenn", "svennonly", svenn_delivery()).status_code == 200
    assert [row[1] for row in spooled(spool_file)] == ["svennonly"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"event": "invoice.charged", "id": 1, "value": {}}).encode(),
        json.dumps({"event": "project.update", "id": "x", "value": {}}).encode(),
        json.dumps({"event": "project.update", "id": 3, "value": None}).encode(),
    ],
)
def test_a_signed_but_bad_body_is_refused_400_and_not_stored(receiver, spool_file, payload):
    import base64
    import hashlib
    import hmac

    from .conftest import TX_SECRET

    key = "k-1"
    mac = hmac.new(TX_SECRET.encode(), key.encode() + b"&" + payload, hashlib.sha512).digest()
    headers = {"idempotency-key": key, "x-request-signature": base64.b64encode(mac).decode()}
    resp = post(receiver, "tripletex", "acme", (payload, headers))
    assert resp.status_code == 400 and resp.json()["error"]
    assert spooled(spool_file) == []


def test_a_redelivery_is_acknowledged_and_kept_once(receiver, spool_file):
    delivery = svenn_delivery()
    assert post(receiver, "svenn", "acme", delivery).json() == {"status": "stored"}
    assert post(receiver, "svenn", "acme", delivery).json() == {"status": "duplicate"}
    assert len(spooled(spool_file)) == 1


def test_a_burst_of_concurrent_deliveries_is_stored_without_loss(receiver, spool_file):
    deliveries = [svenn_delivery(record_id=i) for i in range(1, 101)] + [
        tripletex_delivery(record_id=i) for i in range(1, 101)
    ]

    def send(i):
        system = "svenn" if i < 100 else "tripletex"
        return post(receiver, system, "acme", deliveries[i]).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(len(deliveries))))
    assert statuses == [200] * 200
    rows = spooled(spool_file)
    assert len(rows) == 200 and len({row[2] for row in rows}) == 200


def test_the_spool_moves_into_the_state_store_once_even_when_moved_twice(receiver, spool_file):
    for i in (1, 2, 3):
        post(receiver, "svenn", "acme", svenn_delivery(record_id=i))
    state = duckdb.connect(":memory:")
    migrate(state)
    with spool.connect(spool_file) as conn:
        assert spool.move_to_store(conn, state) == 3
        # a crash after the insert, before the spool was marked: the rows come again
        conn.execute("UPDATE deliveries SET moved_at = NULL")
        assert spool.move_to_store(conn, state) == 0
        assert spool.move_to_store(conn, state) == 0
    rows = state.execute(
        "SELECT record_id, consumed_at FROM sync.webhook_events ORDER BY seq"
    ).fetchall()
    assert rows == [(1, None), (2, None), (3, None)]
