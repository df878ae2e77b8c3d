"""``Idempotency-Key`` on POST: a repeat within 24 h replays the first response, creates nothing."""

from __future__ import annotations

from sync_pipeline.sandbox.svenn import store


def test_repeated_post_with_the_same_key_returns_the_first_response_and_creates_once(svenn):
    body = {"name": "Hytte på Geilo", "display_id": "2001"}
    first = svenn.post("/projects", body, headers={"Idempotency-Key": "run-7-project-2001"})
    again = svenn.post("/projects", body, headers={"Idempotency-Key": "run-7-project-2001"})
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(svenn.list_all("projects")) == 1


def test_replay_returns_the_first_response_even_after_the_record_changed(svenn):
    headers = {"Idempotency-Key": "k1"}
    first = svenn.post("/customers", {"name": "Før"}, headers=headers).json()
    svenn.patch(f"/customers/{first['id']}", {"name": "Etter"})
    replay = svenn.post("/customers", {"name": "Før"}, headers=headers).json()
    assert replay == first


def test_same_key_with_another_body_is_422_idempotency_key_reused(svenn):
    svenn.post("/customers", {"name": "A"}, headers={"Idempotency-Key": "k"})
    resp = svenn.post("/customers", {"name": "B"}, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "idempotency_key_reused"
    assert [c["name"] for c in svenn.list_all("customers")] == ["A"]


def test_same_body_in_another_key_order_is_the_same_request(svenn):
    svenn.post("/customers", {"name": "A", "phone": "1"}, headers={"Idempotency-Key": "k"})
    resp = svenn.post("/customers", {"phone": "1", "name": "A"}, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 201 and len(svenn.list_all("customers")) == 1


def test_keys_are_scoped_per_resource_and_per_company(svenn):
    headers = {"Idempotency-Key": "shared"}
    svenn.post("/customers", {"name": "K"}, headers=headers)
    assert svenn.post("/employees", {"first_name": "K"}, headers=headers).status_code == 201
    other = svenn.other_company()
    assert other.post("/customers", {"name": "K"}, headers=headers).status_code == 201
    assert len(svenn.list_all("customers")) == len(other.list_all("customers")) == 1


def test_a_failed_post_is_not_remembered(svenn):
    headers = {"Idempotency-Key": "retry-me"}
    assert svenn.post("/customers", {"name": ""}, headers=headers).status_code == 422
    assert svenn.post("/customers", {"name": "Rettet"}, headers=headers).status_code == 201


def test_keys_expire_after_24_hours(svenn, monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(store, "wall_seconds", lambda: now[0])
    headers = {"Idempotency-Key": "daily"}
    first = svenn.post("/customers", {"name": "Dag 1"}, headers=headers).json()
    now[0] += 24 * 3600 - 1
    assert svenn.post("/customers", {"name": "Dag 1"}, headers=headers).json() == first
    now[0] += 2
    second = svenn.post("/customers", {"name": "Dag 1"}, headers=headers).json()
    assert second["id"] != first["id"]
    assert len(svenn.list_all("customers")) == 2


def test_without_a_key_every_post_creates(svenn):
    svenn.create("customers", {"name": "X"})
    svenn.create("customers", {"name": "X"})
    assert len(svenn.list_all("customers")) == 2
