"""The Svenn client: cursor paging, idempotent creates, If-Match updates, typed errors.

Unit tests run against the loopback ``StubServer``; the ``integration`` ones against
the project's Svenn sandbox (``svenn_sandbox`` fixture).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sync_pipeline.resources.svenn import SvennApiError, SvennClient, format_timestamp
from sync_pipeline_tests.test_http_client import Reply, Seen, SleepRecorder, StubServer

API_KEY = "svenn-SECRET-key-123"


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


def make_client(stub: StubServer, **kw: Any) -> SvennClient:
    options: dict[str, Any] = {
        "base_url": f"{stub.url}/api/v1",
        "api_key": API_KEY,
        "max_retries": 2,
    }
    options.update(kw)
    sleeps = SleepRecorder()
    return SvennClient(**options).use_clock(monotonic=sleeps.clock, sleeper=sleeps)


def cursor_pages(rows: list[dict[str, Any]]):
    """Serve ``rows`` in pages of ``limit`` with an opaque cursor."""

    def reply(seen: Seen, _n: int) -> Reply:
        start = int(seen.query.get("cursor", "c0")[1:])
        limit = int(seen.query["limit"])
        data = rows[start : start + limit]
        nxt = f"c{start + limit}" if start + limit < len(rows) else None
        return Reply(200, {"data": data, "next_cursor": nxt})

    return reply


def test_cursor_paging_follows_next_cursor_until_null(stub):
    rows = [{"id": i} for i in range(5)]
    stub.add("GET", "/api/v1/projects", cursor_pages(rows))
    client = make_client(stub, page_size=2)

    pages = list(client.iter_pages("projects"))

    assert pages == [rows[0:2], rows[2:4], rows[4:5]]
    seen = stub.requests_to("GET", "/api/v1/projects")
    assert [s.query.get("cursor") for s in seen] == [None, "c2", "c4"]
    assert all(s.query["limit"] == "2" for s in seen)
    assert all(s.headers["Authorization"] == f"Bearer {API_KEY}" for s in seen)


def test_a_repeated_cursor_stops_paging_with_an_error(stub):
    stub.add("GET", "/api/v1/projects", Reply(200, {"data": [{"id": 1}], "next_cursor": "same"}))
    client = make_client(stub)

    with pytest.raises(SvennApiError) as info:
        client.list_all("projects")

    assert info.value.code == "cursor_loop"
    assert len(stub.seen) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": [{"id": 1}]}, "no 'next_cursor'"),
        ({"next_cursor": None}, "no 'data' list"),
        (
            {"data": [{"id": 1}, {"id": None}], "next_cursor": None},
            "a record on the page has no id",
        ),
        ({"data": [{"name": "x"}], "next_cursor": None}, "a record on the page has no id"),
    ],
)
def test_G7_a_page_without_its_envelope_or_ids_is_an_error_never_the_end(stub, body, reason):
    stub.add("GET", "/api/v1/customers", Reply(200, body))
    client = make_client(stub)

    with pytest.raises(SvennApiError) as info:
        client.list_all("customers")

    assert info.value.code == "incomplete_listing" and reason in str(info.value)


def test_list_filters_are_sent_as_rfc3339_utc(stub):
    stub.add("GET", "/api/v1/customers", Reply(200, {"data": [{"id": 1}], "next_cursor": None}))
    client = make_client(stub)
    oslo_winter = timezone(timedelta(hours=1))

    rows = client.list_all(
        "customers",
        updated_since=datetime(2026, 11, 27, 13, 0, 5, 123456, tzinfo=oslo_winter),
        include_deleted=True,
    )

    assert rows == [{"id": 1}]
    assert stub.seen[0].query == {
        "limit": "500",
        "updated_since": "2026-11-27T12:00:05Z",
        "include_deleted": "true",
    }


def test_format_timestamp_treats_naive_as_utc_and_passes_strings_through():
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert format_timestamp("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"


def test_create_sends_the_idempotency_key_and_is_retried_on_429(stub):
    stub.add(
        "POST",
        "/api/v1/customers",
        Reply(
            429, {"error": {"code": "rate_limited", "message": "slow down"}}, {"Retry-After": "2"}
        ),
        Reply(201, {"id": 9, "version": 1, "name": "A"}),
    )
    client = make_client(stub)

    created = client.create("customers", {"name": "A"}, idempotency_key="run-1:customer:7")

    assert created["id"] == 9
    posts = stub.requests_to("POST", "/api/v1/customers")
    assert len(posts) == 2
    assert all(p.headers["Idempotency-Key"] == "run-1:customer:7" for p in posts)
    assert posts[0].body == {"name": "A"}


def test_create_is_not_retried_on_503(stub):
    stub.add("POST", "/api/v1/projects", Reply(503, {"error": {"code": "unavailable"}}))
    client = make_client(stub)

    with pytest.raises(SvennApiError) as info:
        client.create("projects", {"name": "P"})

    assert info.value.status == 503 and info.value.is_transient
    assert len(stub.seen) == 1


def test_update_sends_if_match_and_a_changed_version_raises_412(stub):
    stub.add(
        "PATCH",
        "/api/v1/projects/4",
        Reply(200, {"id": 4, "version": 3}),
        Reply(
            412, {"error": {"code": "version_mismatch", "message": "Version 3 != 2", "fields": {}}}
        ),
    )
    client = make_client(stub)

    assert client.update("projects", 4, {"name": "X"}, if_match=2) == {"id": 4, "version": 3}
    with pytest.raises(SvennApiError) as info:
        client.update("projects", 4, {"name": "Y"}, if_match=2)

    assert (info.value.status, info.value.code) == (412, "version_mismatch")
    patches = stub.requests_to("PATCH", "/api/v1/projects/4")
    assert [p.headers["If-Match"] for p in patches] == ["2", "2"]
    assert patches[0].body == {"name": "X"}


def test_validation_error_lists_fields_and_never_the_key(stub, caplog):
    stub.add(
        "POST",
        "/api/v1/employees",
        Reply(
            422,
            {
                "error": {
                    "code": "validation_failed",
                    "message": f"Invalid employee (key {API_KEY})",
                    "fields": {"first_name": "required", "email": "not an e-mail address"},
                }
            },
        ),
    )
    client = make_client(stub)

    with caplog.at_level(logging.DEBUG), pytest.raises(SvennApiError) as info:
        client.create("employees", {"last_name": "Nordmann"})

    err = info.value
    assert (err.status, err.code) == (422, "validation_failed")
    assert err.validation_messages == [
        {"field": "first_name", "message": "required"},
        {"field": "email", "message": "not an e-mail address"},
    ]
    assert str(err).startswith("Svenn 422 (validation_failed) POST /employees: Invalid employee")
    assert "first_name: required" in str(err)
    for text in (str(err), repr(err), caplog.text, repr(client), str(client)):
        assert API_KEY not in text


def test_get_delete_company_and_error_log(stub):
    stub.add("GET", "/api/v1/customers/3", Reply(200, {"id": 3, "name": "K"}))
    stub.add("DELETE", "/api/v1/customers/3", Reply(204))
    stub.add("GET", "/api/v1/company", Reply(200, {"id": 1, "name": "Demo AS"}))
    stub.add("PUT", "/api/v1/integrations/tripletex/errors", Reply(204))
    stub.add(
        "GET",
        "/api/v1/integrations/tripletex/errors",
        Reply(200, {"errors": [{"code": "PROJECT_MISSING_START_DATE"}]}),
    )
    client = make_client(stub)

    assert client.get("customers", 3) == {"id": 3, "name": "K"}
    assert client.delete("customers", 3) is None
    assert client.get_company()["name"] == "Demo AS"
    errors = [{"code": "PROJECT_MISSING_START_DATE", "severity": "error", "record_id": 5}]
    client.put_errors(errors)
    assert client.get_errors() == [{"code": "PROJECT_MISSING_START_DATE"}]

    assert stub.requests_to("PUT", "/api/v1/integrations/tripletex/errors")[0].body == {
        "errors": errors
    }
    assert client.requests_by_endpoint["GET /customers/{id}"] == 1
    assert client.requests_made == 5


def test_missing_record_is_a_typed_404(stub):
    stub.add("GET", "/api/v1/projects/77", Reply(404, {"error": {"code": "not_found"}}))
    client = make_client(stub)

    with pytest.raises(SvennApiError) as info:
        client.get("projects", 77)

    assert info.value.status == 404 and info.value.code == "not_found"
    assert len(stub.seen) == 1


def test_non_json_error_body_still_gives_a_readable_error(stub):
    stub.add("GET", "/api/v1/company", Reply(502, "Bad gateway from proxy"))
    client = make_client(stub, max_retries=0)

    with pytest.raises(SvennApiError) as info:
        client.get_company()

    assert str(info.value) == "Svenn 502 GET /company: Bad gateway from proxy."


def test_server_rate_limit_headers_pause_the_next_request(stub):
    stub.add(
        "GET",
        "/api/v1/company",
        Reply(200, {"id": 1}, {"RateLimit-Remaining": "0", "RateLimit-Reset": "5"}),
    )
    sleeps = SleepRecorder()
    client = SvennClient(base_url=f"{stub.url}/api/v1", api_key=API_KEY).use_clock(
        monotonic=sleeps.clock, sleeper=sleeps
    )

    client.get_company()
    client.get_company()

    assert sleeps.waits == [5.0]


# -- against the Svenn sandbox -------------------------------------------------------------


@pytest.fixture
def sandbox_client(svenn_sandbox):
    client = SvennClient(
        base_url=svenn_sandbox.base_url,
        api_key=svenn_sandbox.new_company(seed="empty"),
        backoff_factor=0.05,
        rate_limited_backoff_seconds=0.2,
        max_wait_seconds=2.0,
    )
    yield client
    svenn_sandbox.clear_faults()
    client.close()


@pytest.mark.integration
def test_sandbox_create_page_update_delete(sandbox_client):
    client = sandbox_client
    for n in range(3):
        client.create("customers", {"name": f"Kunde {n}", "customer_number": str(100 + n)})

    rows = client.list_all("customers")
    assert sorted(r["customer_number"] for r in rows) == ["100", "101", "102"]

    first = rows[0]
    updated = client.update("customers", first["id"], {"name": "Ny"}, if_match=first["version"])
    assert updated["version"] == first["version"] + 1
    with pytest.raises(SvennApiError) as info:
        client.update("customers", first["id"], {"name": "Igjen"}, if_match=first["version"])
    assert info.value.status == 412

    client.delete("customers", first["id"])
    assert len(client.list_all("customers")) == 2
    tombstones = [r for r in client.list_all("customers", include_deleted=True) if r["deleted_at"]]
    assert [t["id"] for t in tombstones] == [first["id"]]


@pytest.mark.integration
def test_sandbox_idempotency_key_prevents_a_duplicate(sandbox_client):
    body = {"name": "Idempotent", "customer_number": "900"}
    a = sandbox_client.create("customers", body, idempotency_key="k-900")
    b = sandbox_client.create("customers", body, idempotency_key="k-900")

    assert a["id"] == b["id"]
    assert len(sandbox_client.list_all("customers")) == 1


@pytest.mark.integration
def test_sandbox_faults_are_retried(sandbox_client, svenn_sandbox):
    svenn_sandbox.add_fault("/api/v1/company", method="GET", status=503, count=2)

    assert sandbox_client.get_company()["id"]
    assert sandbox_client.requests_by_endpoint["GET /company"] == 3


@pytest.fixture(scope="module")
def rate_limited_svenn():
    """A separate Svenn sandbox that refuses more than 4 requests per second."""
    from sync_pipeline.sandbox.process import SandboxProcess

    with SandboxProcess.start("svenn", "--seed", "empty", "--rate-limit", "4/1") as sandbox:
        yield sandbox


@pytest.mark.integration
def test_sandbox_rate_limit_is_respected_without_bouncing_off_429s(rate_limited_svenn):
    client = SvennClient(base_url=rate_limited_svenn.base_url, api_key=rate_limited_svenn.api_key)

    for _ in range(9):
        assert client.get_company()["id"]

    assert client.requests_made == 9, "RateLimit-Remaining: 0 made the client wait, not retry"
    assert client.rate_limit_wait_seconds > 0
