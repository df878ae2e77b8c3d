"""Svenn webhooks (svenn-api.md "Webhooks"): subscriptions, signed deliveries, retries."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from sync_pipeline_tests.webhooks.sink import WebhookSink

SECRET = "a-secret-of-24-characters"


@pytest.fixture
def sink():
    with WebhookSink() as sink:
        yield sink


def subscribe(svenn, url: str, events=("customer.created", "customer.updated", "customer.deleted")):
    resp = svenn.post("/webhooks", {"url": url, "events": list(events), "secret": SECRET})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_subscriptions_are_created_listed_without_secret_and_deleted(svenn, sink):
    hook = subscribe(svenn, sink.url)
    assert set(hook) == {"id", "url", "events", "created_at"}
    listed = svenn.get("/webhooks").json()["data"]
    assert listed == [hook]
    assert SECRET not in json.dumps(listed)
    assert svenn.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert svenn.get("/webhooks").json()["data"] == []
    assert svenn.delete(f"/webhooks/{hook['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://example.com/hook", "events": ["customer.created"]}, "url"),
        ({"url": "https://example.com/hook", "events": ["customer.exploded"]}, "events"),
        ({"url": "https://example.com/hook", "events": []}, "events"),
        (
            {"url": "https://example.com/hook", "events": ["customer.created"], "secret": "short"},
            "secret",
        ),
    ],
)
def test_invalid_subscriptions_are_refused_with_the_field(svenn, body, field):
    body = {"secret": SECRET, **body}
    resp = svenn.post("/webhooks", body)
    assert resp.status_code == 422
    assert field in resp.json()["error"]["fields"]
    assert svenn.get("/webhooks").json()["data"] == []


def test_each_change_is_delivered_signed_with_the_record_id_and_version(svenn, sink):
    subscribe(svenn, sink.url)
    customer = svenn.create("customers", {"name": "Fjord Rør AS"})
    svenn.patch(f"/customers/{customer['id']}", {"name": "Fjord Rør og Bad AS"})
    svenn.delete(f"/customers/{customer['id']}")
    seen = []
    for _ in range(3):
        got = sink.take()
        expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["svenn-signature"] == f"sha256={expected}"
        body = json.loads(got.body)
        assert got.headers["svenn-delivery"] == body["id"]
        assert set(body) == {"id", "event", "occurred_at", "data"}
        seen.append((body["event"], body["data"]))
    cid = customer["id"]
    assert sorted(seen, key=lambda e: e[1]["version"]) == [
        ("customer.created", {"id": cid, "version": 1}),
        ("customer.updated", {"id": cid, "version": 2}),
        ("customer.deleted", {"id": cid, "version": 3}),
    ]


def test_bulk_writes_fire_one_event_per_record_and_unsubscribed_events_none(svenn, sink):
    subscribe(svenn, sink.url, events=("project.created",))
    svenn.create("customers", {"name": "Not subscribed AS"})
    resp = svenn.post(
        "/projects/bulk",
        {"operations": [{"op": "create", "data": {"name": f"P{i}"}} for i in range(3)]},
    )
    assert resp.status_code == 200, resp.text
    events = sorted(json.loads(sink.take().body)["event"] for _ in range(3))
    assert events == ["project.created"] * 3
    assert all(
        a["event"] == "project.created"
        for a in svenn.client.get("/_sandbox/webhooks").json()["attempts"]
    )


def test_a_failing_receiver_gets_the_same_delivery_again_with_backoff(svenn, sink):
    assert svenn.client.post("/_sandbox/webhooks", json={"backoff_s": [0.05]}).status_code == 200
    subscribe(svenn, sink.url)
    sink.fail_next(2, status=503)
    svenn.create("customers", {"name": "Retry AS"})
    first, second, third = sink.take(), sink.take(), sink.take()
    assert (first.status, second.status, third.status) == (503, 503, 200)
    assert first.body == second.body == third.body
    assert first.headers["svenn-delivery"] == third.headers["svenn-delivery"]
    attempts = svenn.client.get("/_sandbox/webhooks").json()["attempts"]
    # the third attempt is logged after its answer; the first two before the next try
    assert [a["attempt"] for a in attempts][:2] == [1, 2]


def test_deliveries_go_to_loopback_only(svenn):
    resp = svenn.post(
        "/webhooks",
        {
            "url": "https://receiver.example.com/hook",
            "events": ["customer.created"],
            "secret": SECRET,
        },
    )
    assert resp.status_code == 201
    svenn.create("customers", {"name": "Offline AS"})
    (attempt,) = svenn.client.get("/_sandbox/webhooks").json()["attempts"]
    assert attempt["error"].startswith("skipped")
