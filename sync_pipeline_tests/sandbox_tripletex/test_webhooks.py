"""Tripletex event subscriptions (API-NOTES §8): the endpoints, HMAC-signed deliveries with
the subscription's fields, retries, and DISABLED_TOO_MANY_ERRORS until re-enabled."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import requests

from sync_pipeline.sandbox.tripletex.events import DEFAULT_DISABLE_AFTER
from sync_pipeline.sandbox.webhooks import DEFAULT_BACKOFF_S
from sync_pipeline_tests.sandbox_tripletex.test_contract import schema_root as schema_root
from sync_pipeline_tests.sandbox_tripletex.test_contract import validate
from sync_pipeline_tests.webhooks.sink import WebhookSink

SECRET = "shared-secret-1234"


@pytest.fixture
def sink():
    with WebhookSink() as sink:
        yield sink


@pytest.fixture
def fast_retries(tx_sandbox):
    requests.post(
        f"{tx_sandbox.root_url}/_sandbox/webhooks",
        json={"backoff_s": [0.05], "disable_after": 3},
        timeout=10,
    ).raise_for_status()
    yield
    requests.post(
        f"{tx_sandbox.root_url}/_sandbox/webhooks",
        json={"backoff_s": list(DEFAULT_BACKOFF_S), "disable_after": DEFAULT_DISABLE_AFTER},
        timeout=10,
    ).raise_for_status()


def subscribe(api, url: str, event: str, **extra) -> dict:
    resp = api.post(
        "/event/subscription",
        {"event": event, "targetUrl": url, "hmacSharedSecret": SECRET, **extra},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["value"]


def verify(got) -> dict:
    key = got.headers["idempotency-key"]
    mac = hmac.new(SECRET.encode(), key.encode() + b"&" + got.body, hashlib.sha512).digest()
    assert got.headers["x-request-signature"] == base64.b64encode(mac).decode()
    return json.loads(got.body)


def test_subscription_endpoints_follow_the_official_schema(api, sink, openapi, schema_root):
    created = api.post(
        "/event/subscription",
        {
            "event": "project.update",
            "targetUrl": sink.url,
            "fields": "id,name",
            "hmacSharedSecret": SECRET,
        },
    )
    assert created.status_code == 201
    validate(schema_root, "#/components/schemas/ResponseWrapperSubscription", created.json())
    sub = created.json()["value"]
    assert sub["status"] == "ACTIVE" and "hmacSharedSecret" not in sub
    listed = api.get("/event/subscription")
    validate(schema_root, "#/components/schemas/ListResponseSubscription", listed.json())
    assert [s["id"] for s in listed.json()["values"]] == [sub["id"]]
    got = api.get(f"/event/subscription/{sub['id']}")
    validate(schema_root, "#/components/schemas/ResponseWrapperSubscription", got.json())
    changed = api.put(f"/event/subscription/{sub['id']}", {"fields": "id,name,number"})
    assert changed.status_code == 200 and changed.json()["value"]["version"] == 1
    assert api.delete(f"/event/subscription/{sub['id']}").status_code == 204
    assert api.get(f"/event/subscription/{sub['id']}").status_code == 404


def test_an_empty_subscription_is_refused_for_target_url_and_event(api):
    resp = api.post("/event/subscription", {})
    assert resp.status_code == 422
    fields = {m["field"] for m in resp.json()["validationMessages"]}
    assert fields == {"targetUrl", "event"}
    plain = api.post(
        "/event/subscription", {"event": "project.create", "targetUrl": "http://example.com/x"}
    )
    assert plain.status_code == 422


def test_a_change_is_delivered_with_the_fields_and_a_valid_signature(api, sink):
    sub = subscribe(api, sink.url, "customer.update", fields="id,name,version")
    customer = api.customer(name="Fjord Rør AS")
    api.put(f"/customer/{customer['id']}", {"name": "Fjord Rør og Bad AS"})
    body = verify(sink.take())
    assert body == {
        "value": {
            "id": customer["id"],
            "name": "Fjord Rør og Bad AS",
            "version": customer["version"] + 1,
        },
        "event": "customer.update",
        "subscriptionId": sub["id"],
        "id": customer["id"],
    }


def test_a_deletion_is_delivered_without_a_value(api, sink):
    subscribe(api, sink.url, "project.delete")
    project = api.project()
    assert api.delete(f"/project/{project['id']}").status_code == 204
    body = verify(sink.take())
    assert (body["event"], body["id"], body["value"]) == ("project.delete", project["id"], None)


def test_too_many_failures_disable_the_subscription_until_a_put_reenables_it(
    api, sink, fast_retries
):
    sub = subscribe(api, sink.url, "customer.create")
    sink.fail_next(3)
    api.customer(name="Down AS")
    keys = {sink.take().headers["idempotency-key"] for _ in range(3)}
    assert len(keys) == 1  # one delivery, retried under its idempotency key
    for _ in range(500):  # the third failure is counted right after its answer
        status = api.get(f"/event/subscription/{sub['id']}").json()["value"]["status"]
        if status != "ACTIVE":
            break
    assert status == "DISABLED_TOO_MANY_ERRORS"
    api.customer(name="Unheard AS")  # no delivery for a disabled subscription
    resp = api.put(f"/event/subscription/{sub['id']}", {"status": "ACTIVE"})
    assert resp.json()["value"]["status"] == "ACTIVE"
    created = api.customer(name="Heard again AS")
    body = verify(sink.take())
    assert body["id"] == created["id"]
