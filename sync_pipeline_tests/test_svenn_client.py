"""The Svenn client: cursor paging, idempotent creates, If-Match updates, typed errors.

Unit tests run against the loopback ``StubServer``; the ``integration`` ones against
the project's Svenn sandbox (``svenn_sandbox`` fixture).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sync_pipeline.resources.http import ApiUnavailableError
from sync_pipeline.resources.svenn import (
    BulkResult,
    SvennApiError,
    SvennClient,
    create_op,
    delete_op,
    format_timestamp,
    update_op,
)
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


# -- bulk writes -----------------------------------------------------------------------------
BULK = "/api/v1/customers/bulk"


def bulk_answer(*results: dict[str, Any]) -> Reply:
    return Reply(200, {"results": list(results)})


def created(record_id: int) -> dict[str, Any]:
    return {"status": 201, "record": {"id": record_id, "version": 1}, "error": None}


def test_bulk_sends_the_operations_and_returns_typed_results_in_order(stub):
    stub.add(
        "POST",
        BULK,
        bulk_answer(
            created(5),
            {
                "status": 422,
                "record": None,
                "error": {
                    "code": "validation_failed",
                    "message": f"the record is not valid (key {API_KEY})",
                    "fields": {"name": "must not be empty"},
                },
            },
            {"status": 412, "record": None, "error": {"code": "version_mismatch", "message": "v3"}},
            {
                "status": 204,
                "record": {"id": 8, "deleted_at": "2026-11-29T10:00:00Z"},
                "error": None,
            },
        ),
    )
    client = make_client(stub)
    ops = [
        create_op({"name": "A"}, idempotency_key="run-1:customer:1"),
        create_op({"name": ""}, idempotency_key="run-1:customer:2"),
        update_op(7, {"name": "B"}, if_match=2),
        delete_op(8),
    ]

    results = client.bulk("customers", ops)

    (sent,) = stub.requests_to("POST", BULK)
    assert sent.body == {
        "operations": [
            {"op": "create", "idempotency_key": "run-1:customer:1", "data": {"name": "A"}},
            {"op": "create", "idempotency_key": "run-1:customer:2", "data": {"name": ""}},
            {"op": "update", "id": 7, "if_match": 2, "data": {"name": "B"}},
            {"op": "delete", "id": 8, "if_match": None},
        ]
    }
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert results[0] == BulkResult(0, "create", 201, {"id": 5, "version": 1})
    assert results[0].ok and results[0].as_error("customers") is None
    invalid = results[1]
    assert (invalid.index, invalid.op, invalid.status, invalid.ok) == (1, "create", 422, False)
    assert (invalid.record, invalid.error_code) == (None, "validation_failed")
    assert invalid.error_fields == {"name": "must not be empty"}
    assert API_KEY not in invalid.error_message
    error = invalid.as_error("customers")
    assert (error.status, error.code, error.path) == (
        422,
        "validation_failed",
        "/customers/bulk[1]",
    )
    assert error.validation_messages == [{"field": "name", "message": "must not be empty"}]
    assert (results[2].status, results[2].error_code, results[2].error_fields) == (
        412,
        "version_mismatch",
        {},
    )
    assert results[3].ok and results[3].record["deleted_at"]
    assert client.requests_by_endpoint == {"POST /customers/bulk": 1}


@pytest.mark.parametrize("count", [0, 101])
def test_bulk_takes_1_to_100_operations_and_sends_nothing_otherwise(stub, count):
    client = make_client(stub)
    with pytest.raises(ValueError, match="1 to 100"):
        client.bulk("customers", [delete_op(n + 1) for n in range(count)])
    assert stub.seen == []


def test_G5_a_bulk_whose_creates_all_carry_keys_is_resent_after_a_lost_answer(stub):
    stub.add(
        "POST",
        BULK,
        Reply(200, {"results": [created(1), created(2)]}, delay=1.0),  # answer lost
        Reply(503, {"error": {"code": "service_unavailable"}}),
        bulk_answer(created(1), created(2)),
    )
    client = make_client(stub, timeout_seconds=0.2, max_retries=3)
    ops = [create_op({"name": "A"}, "k-a"), create_op({"name": "B"}, "k-b")]

    results = client.bulk("customers", ops)

    assert [r.record["id"] for r in results] == [1, 2]
    posts = stub.requests_to("POST", BULK)
    assert len(posts) == 3 and all(p.body == posts[0].body for p in posts)


def test_G5_a_bulk_with_an_unkeyed_create_is_never_resent(stub):
    stub.add("POST", BULK, Reply(503, {"error": {"code": "service_unavailable"}}))
    client = make_client(stub, max_retries=3)
    ops = [create_op({"name": "A"}, "k-a"), create_op({"name": "B"}, None), update_op(4, {})]

    with pytest.raises(SvennApiError) as info:
        client.bulk("customers", ops)

    assert info.value.status == 503 and info.value.is_transient
    assert len(stub.requests_to("POST", BULK)) == 1


def test_G5_a_lost_answer_to_a_bulk_with_an_unkeyed_create_is_not_resent(stub):
    stub.add("POST", BULK, Reply(200, {"results": [created(1)]}, delay=1.0))
    client = make_client(stub, timeout_seconds=0.2, max_retries=3)

    with pytest.raises(ApiUnavailableError):
        client.bulk("customers", [create_op({"name": "A"}, None)])

    assert len(stub.requests_to("POST", BULK)) == 1


def test_updates_and_deletes_alone_are_resent_after_a_5xx(stub):
    stub.add("POST", BULK, Reply(502, "Bad gateway"), bulk_answer(created(1)))
    client = make_client(stub)
    assert client.bulk("customers", [update_op(1, {"name": "X"})])[0].ok
    assert len(stub.requests_to("POST", BULK)) == 2


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (
            Reply(400, {"error": {"code": "malformed_bulk", "message": "m", "fields": {}}}),
            400,
            None,
        ),
        (Reply(401, {"error": {"code": "unauthorized", "message": "no"}}), 401, "unauthorized"),
        (
            Reply(429, {"error": {"code": "rate_limited", "message": "m"}}, {"Retry-After": "1"}),
            429,
            "rate_limited",
        ),
        (Reply(500, {"error": {"code": "internal_error", "message": "m"}}), 500, "internal_error"),
        (Reply(200, {"results": [created(1), created(2)]}), 200, "bulk_results_malformed"),
        (Reply(200, {"data": []}), 200, "bulk_results_malformed"),
        (Reply(200, {"results": [{"status": "ok"}]}), 200, "bulk_results_malformed"),
    ],
)
def test_only_a_whole_request_failure_raises(stub, reply, status, code):
    stub.add("POST", BULK, reply)
    client = make_client(stub)  # max_retries=2

    with pytest.raises(SvennApiError) as info:
        client.bulk("customers", [create_op({"name": "A"}, "k")])

    assert info.value.status == status
    assert info.value.code == (code or "malformed_bulk")
    sent = len(stub.requests_to("POST", BULK))
    assert sent == (3 if status == 429 else 1)  # 429 retried until the retries are spent


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


@pytest.mark.integration
def test_sandbox_bulk_applies_each_operation_on_its_own(sandbox_client, svenn_sandbox):
    client = sandbox_client
    kept = client.create("customers", {"name": "Gammel", "customer_number": "1"})
    gone = client.create("customers", {"name": "Borte"})

    results = client.bulk(
        "customers",
        [
            create_op({"name": "Ny", "customer_number": "2"}, "run-1:c:2"),
            create_op({"name": "Dobbel", "customer_number": "1"}, "run-1:c:1"),
            update_op(kept["id"], {"name": "Endret"}, if_match=kept["version"]),
            update_op(kept["id"], {"name": "Utdatert"}, if_match=kept["version"]),
            delete_op(gone["id"]),
        ],
    )

    assert [(r.index, r.op, r.status) for r in results] == [
        (0, "create", 201),
        (1, "create", 409),
        (2, "update", 200),
        (3, "update", 412),
        (4, "delete", 204),
    ]
    assert results[1].error_code == "duplicate_number"
    assert "customer_number" in results[1].error_fields
    assert results[3].as_error("customers").code == "version_mismatch"
    assert results[4].record["deleted_at"] is not None
    live = sorted((c["customer_number"], c["name"]) for c in client.list_all("customers"))
    assert live == [("1", "Endret"), ("2", "Ny")]
    assert client.requests_by_endpoint["POST /customers/bulk"] == 1
    stats = svenn_sandbox.stats(client.api_key)
    assert stats["requests"]["POST /api/v1/customers/bulk"] == 1


@pytest.mark.integration
def test_G5_sandbox_bulk_and_single_creates_share_idempotency_keys(sandbox_client):
    client = sandbox_client
    single = client.create("employees", {"first_name": "Ola"}, idempotency_key="e-1")

    results = client.bulk(
        "employees",
        [create_op({"first_name": "Ola"}, "e-1"), create_op({"first_name": "Kari"}, "e-2")],
    )
    again = client.create("employees", {"first_name": "Kari"}, idempotency_key="e-2")

    assert results[0].record == single
    assert again == results[1].record
    assert len(client.list_all("employees")) == 2


@pytest.mark.integration
def test_G5_sandbox_bulk_is_resent_after_a_503_and_creates_once(sandbox_client, svenn_sandbox):
    svenn_sandbox.add_fault("/customers/bulk", method="POST", status=503, count=1)
    ops = [create_op({"name": f"K{n}"}, f"k-{n}") for n in range(3)]

    results = sandbox_client.bulk("customers", ops)

    assert [r.status for r in results] == [201, 201, 201]
    assert sandbox_client.requests_by_endpoint["POST /customers/bulk"] == 2
    assert len(sandbox_client.list_all("customers")) == 3


@pytest.mark.integration
def test_sandbox_bulk_with_an_unkeyed_create_raises_on_503(sandbox_client, svenn_sandbox):
    svenn_sandbox.add_fault("/customers/bulk", method="POST", status=503, count=1)

    with pytest.raises(SvennApiError) as info:
        sandbox_client.bulk("customers", [create_op({"name": "K"}, None)])

    assert info.value.status == 503
    assert sandbox_client.requests_by_endpoint["POST /customers/bulk"] == 1
    assert sandbox_client.list_all("customers") == []


@pytest.mark.integration
def test_sandbox_contract_rate_limit_counts_a_bulk_of_100_once():
    """Started with svenn-api.md's limit (600 per 60 s): a bulk of 100 is one request of it."""
    import requests

    from sync_pipeline.sandbox.process import SandboxProcess

    with SandboxProcess.start("svenn", "--seed", "empty", "--rate-limit", "600/60") as sandbox:
        client = SvennClient(base_url=sandbox.base_url, api_key=sandbox.api_key)
        try:
            results = client.bulk(
                "customers", [create_op({"name": f"K{n}"}, f"k{n}") for n in range(100)]
            )
            assert [r.status for r in results] == [201] * 100
            company = requests.get(
                f"{sandbox.base_url}/company",
                headers={"Authorization": f"Bearer {sandbox.api_key}"},
                timeout=10,
            )
        finally:
            client.close()
        assert company.headers["RateLimit-Limit"] == "600"
        assert company.headers["RateLimit-Remaining"] == "598"  # the bulk, then this GET
        stats = sandbox.stats(sandbox.api_key)
        assert stats["writes"] == 100
        assert stats["requests"]["POST /api/v1/customers/bulk"] == 1


# -- entity-level calls (what the sync asks for) -------------------------------------------------


@pytest.mark.integration
def test_G5_live_by_key_finds_live_records_changed_since_never_tombstones(sandbox_client):
    client = sandbox_client
    since = datetime.now(UTC) - timedelta(minutes=1)
    kept = client.create("customers", {"name": "Her", "customer_number": " 701 "})
    gone = client.create("customers", {"name": "Borte", "customer_number": "702"})
    client.delete("customers", gone["id"])

    found = client.live_by_key("customer", since)

    assert list(found) == ["701"]
    assert [(w.id, w.key) for w in found["701"]] == [(kept["id"], "701")]
    assert client.key_of("customer", kept) == "701"


@pytest.mark.integration
def test_get_many_and_write_many_speak_entities(sandbox_client):
    client = sandbox_client
    (created,) = client.write_many(
        "employee", [create_op({"first_name": "Kari", "employee_number": "9"}, "e-9")]
    )
    assert created.ok and created.written is not None

    records = client.get_many("employee", [created.written.id, 999_999])
    changed = client.list_changed("employee", None)

    assert [r["id"] for r in records] == [created.written.id]
    assert [r["id"] for r in changed] == [created.written.id]
