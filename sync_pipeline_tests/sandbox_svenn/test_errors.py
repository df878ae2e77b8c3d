"""Every error status of svenn-api.md, always in the API's own error shape."""

from __future__ import annotations

import pytest

from sync_pipeline.sandbox.core import RateLimitSpec

from .conftest import API, Svenn, make_client


def error_of(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "fields"}
    return body["error"]


# -- 400 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw", [b"{", b"", b"   ", b'{"name": "x",}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000]
)
def test_malformed_json_body_is_400(svenn, raw):
    resp = svenn.request(
        "POST", "/customers", content=raw, headers={"Content-Type": "application/json"}
    )
    assert error_of(resp, 400)["code"] == "malformed_json"


@pytest.mark.parametrize(
    "path",
    [
        "/customers?limit=0",
        "/customers?limit=501",
        "/customers?limit=ti",
        "/customers?include_deleted=kanskje",
        "/customers?updated_since=i%20går",
        "/customers?updated_since=2026-11-27T12:00:00",  # no offset: names no instant
        "/customers?cursor=not-a-cursor",
        "/customers/abc",
    ],
)
def test_malformed_parameter_is_400(svenn, path):
    error = error_of(svenn.get(path), 400)
    assert error["code"] in ("invalid_parameter", "bad_request")
    assert error["fields"]


def test_cursor_of_another_resource_is_400(svenn):
    for i in range(3):
        svenn.create("employees", {"first_name": f"E{i}"})
    cursor = svenn.get("/employees", params={"limit": 1}).json()["next_cursor"]
    error_of(svenn.get("/projects", params={"cursor": cursor}), 400)


@pytest.mark.parametrize("if_match", ["abc", "1.5", "-1", '"'])
def test_malformed_if_match_is_400_and_changes_nothing(svenn, if_match):
    svenn.create("customers", {"name": "Uendret"})
    resp = svenn.patch("/customers/1", {"name": "Endret"}, headers={"If-Match": if_match})
    error_of(resp, 400)
    assert svenn.get("/customers/1").json()["name"] == "Uendret"


# -- 401 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic svenn-test-key"},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_key_is_401(svenn, headers):
    for method, path in [("GET", "/projects"), ("POST", "/customers"), ("GET", "/company")]:
        resp = svenn.client.request(method, API + path, headers=headers, json={"name": "x"})
        assert error_of(resp, 401)["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert "svenn-test-key" not in resp.text
    assert svenn.list_all("customers") == []


# -- 404 -------------------------------------------------------------------------------------------
def test_unknown_record_and_unknown_path_are_404(svenn):
    assert error_of(svenn.get("/projects/999"), 404)["code"] == "not_found"
    assert error_of(svenn.patch("/employees/7", {"first_name": "x"}), 404)["code"] == "not_found"
    assert error_of(svenn.delete("/customers/7"), 404)["code"] == "not_found"
    assert error_of(svenn.get("/invoices"), 404)["code"] == "not_found"


def test_wrong_method_is_405_listing_the_allowed_ones(svenn):
    resp = svenn.request("PUT", "/projects/1", json={})
    assert error_of(resp, 405)["code"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


# -- 409 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "number", "body"),
    [
        ("customers", "customer_number", {"name": "Kunde"}),
        ("employees", "employee_number", {"first_name": "Ansatt"}),
    ],
)
def test_number_taken_by_a_live_record_is_409_duplicate_number(svenn, resource, number, body):
    first = svenn.create(resource, {**body, number: "A17"})
    error = error_of(svenn.post(f"/{resource}", {**body, number: "A17"}), 409)
    assert error["code"] == "duplicate_number" and number in error["fields"]
    other = svenn.create(resource, {**body, number: "A18"})
    error_of(svenn.patch(f"/{resource}/{other['id']}", {number: "A17"}), 409)
    assert svenn.get(f"/{resource}/{other['id']}").json()[number] == "A18"
    # Keeping one's own number is no conflict; a deleted record frees its number.
    assert svenn.patch(f"/{resource}/{first['id']}", {number: "A17"}).status_code == 200
    svenn.delete(f"/{resource}/{first['id']}")
    assert svenn.patch(f"/{resource}/{other['id']}", {number: "A17"}).status_code == 200
    assert len(svenn.list_all(resource)) == 1
    # Numbers without a value never conflict.
    svenn.create(resource, {**body, number: None})
    svenn.create(resource, body)


# -- 412 -------------------------------------------------------------------------------------------
def test_stale_if_match_is_412_and_nothing_changes(svenn):
    project = svenn.create("projects", {"name": "Tak"})
    svenn.patch("/projects/1", {"name": "Tak og vegg"})  # version 2
    resp = svenn.patch("/projects/1", {"name": "Gammel visning"}, headers={"If-Match": "1"})
    assert error_of(resp, 412)["code"] == "version_mismatch"
    now = svenn.get("/projects/1").json()
    assert (now["name"], now["version"]) == ("Tak og vegg", 2)
    assert now["updated_at"] > project["updated_at"]
    ok = svenn.patch("/projects/1", {"name": "Ny"}, headers={"If-Match": "2"})
    assert ok.status_code == 200 and ok.json()["version"] == 3
    quoted = svenn.patch("/projects/1", {"name": "Nyere"}, headers={"If-Match": '"3"'})
    assert quoted.status_code == 200


# -- 422 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "body", "fields"),
    [
        ("projects", {}, {"name"}),
        ("projects", {"name": ""}, {"name"}),
        ("projects", {"name": "x" * 256}, {"name"}),
        ("projects", {"name": 5}, {"name"}),
        ("projects", {"name": None}, {"name"}),
        ("projects", {"name": "P", "status": "paused"}, {"status"}),
        ("projects", {"name": "P", "start_date": "27.11.2026"}, {"start_date"}),
        ("projects", {"name": "P", "start_date": "2026-02-30"}, {"start_date"}),
        (
            "projects",
            {"name": "P", "start_date": "2026-05-02", "end_date": "2026-05-01"},
            {"end_date"},
        ),
        ("projects", {"name": "P", "customer_id": 42}, {"customer_id"}),
        ("projects", {"name": "P", "project_manager_id": 42}, {"project_manager_id"}),
        ("projects", {"name": "P", "member_ids": [42]}, {"member_ids"}),
        ("projects", {"name": "P", "member_ids": [1, 1]}, {"member_ids"}),
        ("projects", {"name": "P", "member_ids": "1"}, {"member_ids"}),
        ("projects", {"name": "P", "member_ids": None}, {"member_ids"}),
        ("projects", {"name": "P", "parent_id": 99}, {"parent_id"}),
        ("projects", {"name": "P", "parent_id": True}, {"parent_id"}),
        ("projects", {"name": "P", "id": 5, "colour": "red"}, {"id", "colour"}),
        ("customers", {"name": "K", "email": "ikke-en-adresse"}, {"email"}),
        ("customers", {"name": "K", "is_active": "yes"}, {"is_active"}),
        ("customers", {"name": "K", "customer_number": 10}, {"customer_number"}),
        ("employees", {"last_name": "Uten fornavn"}, {"first_name"}),
        ("employees", {"first_name": "x" * 101}, {"first_name"}),
        ("employees", {"first_name": "Ola", "phone": 4791}, {"phone"}),
    ],
)
def test_invalid_record_is_422_validation_failed_with_fields(svenn, resource, body, fields):
    svenn.create("employees", {"first_name": "Eksisterende"})  # employee 1 exists
    before = svenn.list_all(resource)
    error = error_of(svenn.post(f"/{resource}", body), 422)
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == fields
    assert svenn.list_all(resource) == before


def test_body_that_is_not_an_object_is_422(svenn):
    assert error_of(svenn.post("/customers", ["name"]), 422)["fields"] == {"body": "not an object"}


def test_parent_must_be_a_live_top_level_project(svenn):
    top = svenn.create("projects", {"name": "Topp"})
    sub = svenn.create("projects", {"name": "Under", "parent_id": top["id"]})
    third = svenn.create("projects", {"name": "Tredje"})
    error = error_of(svenn.post("/projects", {"name": "Under-under", "parent_id": sub["id"]}), 422)
    assert "parent_id" in error["fields"]
    error_of(svenn.patch(f"/projects/{third['id']}", {"parent_id": third["id"]}), 422)
    error_of(svenn.patch(f"/projects/{top['id']}", {"parent_id": third["id"]}), 422)
    svenn.delete(f"/projects/{third['id']}")
    error_of(svenn.post("/projects", {"name": "X", "parent_id": third["id"]}), 422)


def test_patch_is_checked_against_the_stored_record(svenn):
    svenn.create("projects", {"name": "P", "start_date": "2026-05-01"})
    error = error_of(svenn.patch("/projects/1", {"end_date": "2026-04-30"}), 422)
    assert set(error["fields"]) == {"end_date"}
    assert svenn.patch("/projects/1", {"end_date": "2026-05-01"}).status_code == 200


def test_unchanged_reference_to_a_since_deleted_record_does_not_block_a_patch(svenn):
    svenn.create("employees", {"first_name": "Går av"})
    svenn.create("projects", {"name": "P", "member_ids": [1], "project_manager_id": 1})
    svenn.delete("/employees/1")
    resp = svenn.patch("/projects/1", {"name": "P2", "member_ids": [1], "project_manager_id": 1})
    assert resp.status_code == 200
    error_of(svenn.patch("/projects/1", {"customer_id": 1}), 422)


# -- 429 -------------------------------------------------------------------------------------------
def test_exhausted_rate_limit_is_429_with_retry_after():
    with make_client(rate_limit=RateLimitSpec(3, 60)) as client:
        svenn = Svenn(client)
        remaining = [svenn.get("/projects").headers["RateLimit-Remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        resp = svenn.get("/projects")
        assert error_of(resp, 429)["code"] == "rate_limited"
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert resp.headers["RateLimit-Limit"] == "3"
        assert resp.headers["RateLimit-Remaining"] == "0"
        # The window is per company.
        assert svenn.other_company().get("/projects").status_code == 200


def test_rate_limit_headers_on_every_response_even_when_limiting_is_off(svenn):
    for resp in (
        svenn.get("/projects"),
        svenn.get("/projects/1"),
        svenn.client.get(API + "/projects"),
        svenn.post("/customers", {}),
    ):
        assert int(resp.headers["RateLimit-Limit"]) >= 1_000
        assert int(resp.headers["RateLimit-Remaining"]) >= 1_000
        assert int(resp.headers["RateLimit-Reset"]) >= 0


# -- 5xx -------------------------------------------------------------------------------------------
def test_injected_fault_is_a_5xx_in_the_error_shape_then_recovers(svenn):
    resp = svenn.client.post(
        "/_sandbox/faults", json={"path": "/api/v1/customers$", "method": "POST", "status": 503}
    )
    assert resp.status_code == 201
    error = error_of(svenn.post("/customers", {"name": "Feiler"}), 503)
    assert error["code"] == "service_unavailable"
    assert svenn.get("/customers").status_code == 200  # GET was not targeted
    assert svenn.post("/customers", {"name": "Virker"}).status_code == 201  # count was 1
    assert [c["name"] for c in svenn.list_all("customers")] == ["Virker"]


def test_G5_a_late_commit_is_visible_by_get_and_replayed_under_its_idempotency_key(svenn):
    fault = {"path": "/api/v1/customers$", "method": "POST", "status": 502, "after_commit": True}
    assert svenn.client.post("/_sandbox/faults", json=fault).status_code == 201
    key = {"Idempotency-Key": "sync:acme:customer:tripletex:7:abc"}
    error_of(svenn.post("/customers", {"name": "Sen AS"}, headers=key), 502)
    (stored,) = svenn.list_all("customers")  # committed although the answer was a 502
    assert stored["name"] == "Sen AS"
    again = svenn.post("/customers", {"name": "Sen AS"}, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == stored["id"]
    assert [c["id"] for c in svenn.list_all("customers")] == [stored["id"]]  # no duplicate
