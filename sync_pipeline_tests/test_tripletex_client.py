"""The Tripletex client: session tokens on Oslo dates, paging, conditional GET, errors.

Unit tests run against the loopback ``StubServer``; the ``integration`` ones against
the project's Tripletex sandbox (``tripletex_sandbox`` fixture).
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sync_pipeline.resources.http import ApiUnavailableError
from sync_pipeline.resources.tripletex import (
    CUSTOMER_FIELDS,
    EMPLOYEE_FIELDS,
    PROJECT_FIELDS,
    TripletexApiError,
    TripletexClient,
    oslo_date,
)
from sync_pipeline_tests.test_http_client import Reply, Seen, SleepRecorder, StubServer

CONSUMER = "consumer-SECRET-aaa"
EMPLOYEE = "employee-SECRET-bbb"
SESSION = "session-SECRET-ccc"


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


class Today:
    """An injectable Oslo date."""

    def __init__(self, value: date) -> None:
        self.value = value

    def __call__(self) -> date:
        return self.value


def session_reply(token: str = SESSION) -> Reply:
    return Reply(200, {"value": {"id": 1, "token": token, "expirationDate": "2026-12-04"}})


def make_client(stub: StubServer, today: Today | None = None, **kw: Any) -> TripletexClient:
    stub.add("PUT", "/v2/token/session/:create", session_reply())
    options: dict[str, Any] = {
        "base_url": f"{stub.url}/v2",
        "consumer_token": CONSUMER,
        "employee_token": EMPLOYEE,
        "max_retries": 2,
        "rate_limit_requests": None,
    }
    options.update(kw)
    sleeps = SleepRecorder()
    return TripletexClient(**options).use_clock(
        today=today or Today(date(2026, 11, 27)), monotonic=sleeps.clock, sleeper=sleeps
    )


def basic_password(seen: Seen) -> tuple[str, str]:
    user, _, password = (
        base64.b64decode(seen.headers["Authorization"].split()[1]).decode().partition(":")
    )
    return user, password


def session_creates(stub: StubServer) -> list[Seen]:
    return stub.requests_to("PUT", "/v2/token/session/:create")


# -- session ---------------------------------------------------------------------------------


def test_session_is_created_with_oslo_expiry_and_sent_as_basic_auth(stub):
    stub.add("GET", "/v2/customer/5", Reply(200, {"value": {"id": 5}}))
    client = make_client(stub, Today(date(2026, 11, 27)), session_days=7)

    assert client.get("/customer/5") == {"id": 5}

    create = session_creates(stub)[0]
    assert create.query == {
        "consumerToken": CONSUMER,
        "employeeToken": EMPLOYEE,
        "expirationDate": "2026-12-04",
    }
    assert "Authorization" not in create.headers
    assert basic_password(stub.requests_to("GET", "/v2/customer/5")[0]) == ("0", SESSION)
    assert client.session_expires == date(2026, 12, 4)


def test_session_is_reused_until_the_day_before_expiry_then_renewed(stub):
    stub.add("GET", "/v2/employee/1", Reply(200, {"value": {"id": 1}}))
    today = Today(date(2026, 11, 27))
    client = make_client(stub, today, session_days=7)

    for offset in range(6):  # 27 Nov … 2 Dec: token valid until the start of 4 Dec
        today.value = date(2026, 11, 27) + timedelta(days=offset)
        client.get("/employee/1")
    assert len(session_creates(stub)) == 1

    today.value = date(2026, 12, 3)  # the last day: renew before the Oslo date reaches expiry
    client.get("/employee/1")
    creates = session_creates(stub)
    assert len(creates) == 2
    assert creates[1].query["expirationDate"] == "2026-12-10"


def test_one_day_session_is_renewed_every_oslo_day(stub):
    stub.add("GET", "/v2/employee/1", Reply(200, {"value": {"id": 1}}))
    today = Today(date(2026, 11, 27))
    client = make_client(stub, today, session_days=1)

    client.get("/employee/1")
    client.get("/employee/1")
    today.value = date(2026, 11, 28)
    client.get("/employee/1")

    assert [s.query["expirationDate"] for s in session_creates(stub)] == [
        "2026-11-28",
        "2026-11-29",
    ]


def test_oslo_date_is_ahead_of_utc_late_in_the_evening():
    # 23:30 UTC on 27 Nov is already 28 Nov in Oslo (UTC+1): a token stamped with the
    # UTC date would expire an hour early.
    assert oslo_date(datetime(2026, 11, 27, 23, 30, tzinfo=UTC)) == date(2026, 11, 28)
    assert oslo_date(datetime(2026, 7, 1, 22, 30, tzinfo=UTC)) == date(2026, 7, 2)  # UTC+2
    assert oslo_date(datetime(2026, 11, 27, 12, 0)) == date(2026, 11, 27)


def test_401_mints_a_new_session_once_and_repeats_the_call(stub):
    unauthorized = Reply(401, {"status": 401, "code": 3000, "message": "Unauthorized"})
    stub.add("GET", "/v2/project/3", unauthorized, Reply(200, {"value": {"id": 3}}))
    client = make_client(stub)

    assert client.get("/project/3") == {"id": 3}
    assert len(session_creates(stub)) == 2


def test_persistent_401_raises_after_one_renewal(stub):
    stub.add(
        "GET",
        "/v2/project/3",
        Reply(401, {"status": 401, "code": 3000, "message": "Unauthorized", "requestId": "r-1"}),
    )
    client = make_client(stub)

    with pytest.raises(TripletexApiError) as info:
        client.get("/project/3")

    assert info.value.status == 401 and info.value.code == 3000
    assert len(session_creates(stub)) == 2
    assert len(stub.requests_to("GET", "/v2/project/3")) == 2


def test_threads_sharing_a_client_mint_one_session(stub):
    from concurrent.futures import ThreadPoolExecutor

    stub.add("GET", "/v2/customer/\\d+", Reply(200, {"value": {"id": 1}}))
    client = make_client(stub)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: client.get(f"/customer/{n}"), range(40)))

    assert len(results) == 40
    assert len(session_creates(stub)) == 1
    assert client.requests_by_endpoint["GET /customer/{id}"] == 40


def test_who_am_i_sends_the_summary_prefix_percent_encoded(stub):
    stub.add("GET", "/v2/token/session/%3EwhoAmI", Reply(200, {"value": {"employeeId": 7}}))
    client = make_client(stub)

    assert client.who_am_i() == {"employeeId": 7}
    assert stub.seen[-1].path.startswith("/v2/token/session/%3EwhoAmI")


# -- paging ------------------------------------------------------------------------------------


def paged(rows: list[dict[str, Any]], lying_total: int = 10_000):
    def reply(seen: Seen, _n: int) -> Reply:
        start, count = int(seen.query["from"]), int(seen.query["count"])
        values = rows[start : start + count]
        return Reply(
            200,
            {
                "fullResultSize": lying_total,
                "from": start,
                "count": len(values),
                "versionDigest": "'If-None-Match' header not specified",
                "values": values,
            },
        )

    return reply


def test_paging_stops_on_a_short_page_even_when_full_result_size_lies(stub):
    rows = [{"id": i} for i in range(5)]
    stub.add("GET", "/v2/project", paged(rows, lying_total=1_000_000))
    client = make_client(stub, page_size=2)

    pages = list(client.iter_pages("/project", {"isClosed": False}, fields=PROJECT_FIELDS))

    assert pages == [rows[0:2], rows[2:4], rows[4:5]]
    seen = stub.requests_to("GET", "/v2/project")
    assert [(s.query["from"], s.query["count"]) for s in seen] == [
        ("0", "2"),
        ("2", "2"),
        ("4", "2"),
    ]
    assert all(s.query["fields"] == PROJECT_FIELDS for s in seen)
    assert all(s.query["isClosed"] == "false" for s in seen)


def test_paging_reads_past_a_full_result_size_that_undercounts(stub):
    rows = [{"id": i} for i in range(7)]
    stub.add("GET", "/v2/employee", paged(rows, lying_total=3))
    client = make_client(stub, page_size=3)

    assert client.list_all("/employee") == rows


def test_paging_an_exact_multiple_ends_with_one_empty_request(stub):
    rows = [{"id": i} for i in range(4)]
    stub.add("GET", "/v2/customer", paged(rows))
    client = make_client(stub, page_size=2)

    assert client.list_all("/customer", {"isInactive": True}) == rows
    assert len(stub.requests_to("GET", "/v2/customer")) == 3


def test_list_params_are_sent_comma_separated(stub):
    stub.add("GET", "/v2/project", paged([]))
    client = make_client(stub)

    client.list_all(
        "/project",
        {"id": [1, 2, 3], "customerId": None, "isClosed": True, "startDateFrom": date(2026, 1, 2)},
    )

    assert stub.seen[-1].query == {
        "id": "1,2,3",
        "isClosed": "true",
        "startDateFrom": "2026-01-02",
        "from": "0",
        "count": "1000",
    }


# -- conditional GET -------------------------------------------------------------------------


def test_conditional_get_returns_digest_then_not_modified(stub):
    def reply(seen: Seen, _n: int) -> Reply:
        if seen.headers.get("If-None-Match") == "digest-1":
            return Reply(304)
        return Reply(
            200,
            {"fullResultSize": 1, "count": 1, "versionDigest": "digest-1", "values": [{"id": 1}]},
        )

    stub.add("GET", "/v2/employee", reply)
    client = make_client(stub)

    first = client.get_page_conditional("/employee", fields=EMPLOYEE_FIELDS)
    second = client.get_page_conditional(
        "/employee", fields=EMPLOYEE_FIELDS, if_none_match="digest-1"
    )

    assert first.values == [{"id": 1}] and first.version_digest == "digest-1"
    assert not first.not_modified
    assert stub.seen[1].headers["If-None-Match"], "a probe value asks the server for a digest"
    assert second.not_modified and second.values is None
    assert second.version_digest == "digest-1"


def test_conditional_get_without_digest_support_reports_none(stub):
    stub.add("GET", "/v2/customer", paged([{"id": 1}]))
    client = make_client(stub)

    page = client.get_page_conditional("/customer", fields=CUSTOMER_FIELDS)

    assert page.values == [{"id": 1}]
    assert page.version_digest is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"fullResultSize": 1, "from": 0, "count": 0}, "no 'values' list"),
        ({"from": 0, "count": 1, "values": [{"id": 1}]}, "no 'fullResultSize'"),
        (
            {"fullResultSize": 2, "values": [{"id": 1}, {"id": None}]},
            "a record on the page has no id",
        ),
        (
            {"fullResultSize": 2, "values": [{"id": 1}, {"name": "x"}]},
            "a record on the page has no id",
        ),
    ],
)
def test_G7_a_page_without_its_envelope_or_ids_is_an_error_never_an_empty_page(stub, body, reason):
    stub.add("GET", "/v2/customer", Reply(200, body))
    client = make_client(stub)

    for read in (
        lambda: client.list_all("/customer", fields=CUSTOMER_FIELDS),
        lambda: client.get_page_conditional("/customer", fields=CUSTOMER_FIELDS),
    ):
        with pytest.raises(TripletexApiError) as info:
            read()
        assert info.value.code == "incomplete_listing" and reason in str(info.value)


def test_G7_records_may_lack_an_id_only_when_the_fields_do_not_ask_for_it(stub):
    stub.add("GET", "/v2/project", paged([{"customer": {"id": 3}}]))
    client = make_client(stub)

    assert client.list_all("/project", fields="customer(id)") == [{"customer": {"id": 3}}]
    with pytest.raises(TripletexApiError):
        client.list_all("/project", fields="id,customer(id)")


# -- writes ------------------------------------------------------------------------------------


def test_writes_unwrap_value_and_values(stub):
    stub.add("POST", "/v2/customer", Reply(201, {"value": {"id": 10, "version": 1}}))
    stub.add("PUT", "/v2/customer/10", Reply(200, {"value": {"id": 10, "version": 2}}))
    stub.add("POST", "/v2/project/list", Reply(201, {"values": [{"id": 1}, {"id": 2}]}))
    stub.add("PUT", "/v2/project/list", Reply(200, {"values": [{"id": 1, "version": 3}]}))
    stub.add("DELETE", "/v2/project/1", Reply(204))
    client = make_client(stub)

    assert client.post("/customer", {"name": "A", "customerNumber": 7}) == {"id": 10, "version": 1}
    assert client.put("/customer/10", {"version": 1, "name": "B"}) == {"id": 10, "version": 2}
    assert client.post_list("/project/list", [{"name": "p1"}, {"name": "p2"}]) == [
        {"id": 1},
        {"id": 2},
    ]
    assert client.put_list("/project/list", [{"id": 1, "version": 2}]) == [{"id": 1, "version": 3}]
    assert client.delete("/project/1") is None
    assert stub.requests_to("POST", "/v2/customer")[0].body == {"name": "A", "customerNumber": 7}
    assert client.post_list("/project/list", []) == []
    assert len(stub.requests_to("POST", "/v2/project/list")) == 1, "empty batch sends nothing"


def test_requests_made_counts_every_http_call_including_the_session(stub):
    stub.add("GET", "/v2/customer/\\d+", Reply(503), Reply(200, {"value": {}}))
    client = make_client(stub)

    client.get("/customer/1")
    client.get("/customer/2")

    assert client.requests_made == 4  # session + 503 + 200 + 200
    assert client.requests_by_endpoint == {
        "PUT /token/session/:create": 1,
        "GET /customer/{id}": 3,
    }


# -- errors and secrecy ----------------------------------------------------------------------


def test_validation_error_is_typed_and_readable(stub):
    stub.add(
        "POST",
        "/v2/project",
        Reply(
            422,
            {
                "status": 422,
                "code": 18000,
                "message": "Validering feilet.",
                "developerMessage": "VALIDATION_ERROR",
                "validationMessages": [
                    {"field": "startDate", "message": "Feltet må fylles ut.", "path": None}
                ],
                "requestId": "1234-abcd",
            },
        ),
    )
    client = make_client(stub)

    with pytest.raises(TripletexApiError) as info:
        client.post("/project", {"name": "P"})

    err = info.value
    assert (err.status, err.code, err.request_id) == (422, 18000, "1234-abcd")
    assert err.validation_messages == [{"field": "startDate", "message": "Feltet må fylles ut."}]
    assert str(err) == (
        "Tripletex 422 (18000) POST /project: Validering feilet. "
        "startDate: Feltet må fylles ut. [request 1234-abcd]"
    )
    assert len(stub.requests_to("POST", "/v2/project")) == 1


def test_stale_version_conflict_is_a_409_error_not_retried(stub):
    stub.add(
        "PUT",
        "/v2/project/4",
        Reply(409, {"status": 409, "code": 8000, "message": "Revision Exception"}),
    )
    client = make_client(stub)

    with pytest.raises(TripletexApiError) as info:
        client.put("/project/4", {"id": 4, "version": 1, "name": "x"})

    assert (info.value.status, info.value.code) == (409, 8000)
    assert len(stub.requests_to("PUT", "/v2/project/4")) == 1


def test_tokens_never_appear_in_errors_or_logs(stub, caplog):
    # A server that echoes credentials back (a proxy error page, say) must not leak them.
    stub.add(
        "PUT",
        "/v2/token/session/:create",
        Reply(
            422,
            {
                "status": 422,
                "code": 15000,
                "message": f"Bad employeeToken={EMPLOYEE} for consumer {CONSUMER}",
                "validationMessages": [{"field": "consumerToken", "message": CONSUMER}],
            },
        ),
    )
    client = TripletexClient(
        base_url=f"{stub.url}/v2", consumer_token=CONSUMER, employee_token=EMPLOYEE
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(TripletexApiError) as info:
        client.get("/project/1")

    err = info.value
    assert err.path == "/token/session/:create"
    for text in (str(err), repr(err), caplog.text, repr(client), str(client), str(err.__dict__)):
        assert CONSUMER not in text
        assert EMPLOYEE not in text


def test_session_token_is_not_in_errors_from_authenticated_calls(stub, caplog):
    stub.add("GET", "/v2/project/1", Reply(500, {"status": 500, "code": 1000, "message": SESSION}))
    client = make_client(stub, max_retries=0)

    with caplog.at_level(logging.DEBUG), pytest.raises(TripletexApiError) as info:
        client.get("/project/1")

    for text in (str(info.value), repr(info.value), caplog.text):
        assert SESSION not in text
        assert base64.b64encode(f"0:{SESSION}".encode()).decode() not in text


def test_unreachable_tripletex_raises_unavailable_without_tokens(caplog):
    client = TripletexClient(
        base_url="http://127.0.0.1:9/v2",
        consumer_token=CONSUMER,
        employee_token=EMPLOYEE,
        max_retries=1,
    ).use_clock(sleeper=SleepRecorder())

    with caplog.at_level(logging.DEBUG), pytest.raises(ApiUnavailableError) as info:
        client.who_am_i()

    assert str(info.value).startswith("Tripletex unavailable PUT /token/session/:create:")
    for text in (str(info.value), repr(info.value), caplog.text):
        assert CONSUMER not in text and EMPLOYEE not in text


def test_field_constants_cover_what_the_sync_compares():
    for field in ("version", "number", "startDate", "isClosed", "isInternal", "changes"):
        assert field in PROJECT_FIELDS.split(",")
    assert "participants(id" in PROJECT_FIELDS
    for field in ("customerNumber", "isInactive", "invoiceEmail", "organizationNumber"):
        assert field in CUSTOMER_FIELDS.split(",")
    for field in ("employeeNumber", "lastName", "phoneNumberMobile", "userType"):
        assert field in EMPLOYEE_FIELDS.split(",")
    assert TripletexClient.PROJECT_FIELDS == PROJECT_FIELDS


def test_field_constants_exist_in_the_tripletex_openapi_models(tripletex_reference_dir):
    import json

    spec = json.loads((tripletex_reference_dir / "openapi-2.74.00.json").read_text())
    schemas = spec["components"]["schemas"]
    for model, fields in (
        ("Project", PROJECT_FIELDS),
        ("Customer", CUSTOMER_FIELDS),
        ("Employee", EMPLOYEE_FIELDS),
    ):
        depth, top, name = 0, [], ""
        for ch in fields + ",":
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "," and depth == 0:
                top.append(name)
                name = ""
            elif depth == 0:
                name += ch
        missing = [f for f in top if f not in schemas[model]["properties"]]
        assert not missing, f"{model}: {missing}"


# -- against the Tripletex sandbox -------------------------------------------------------------


@pytest.fixture
def sandbox_client(tripletex_sandbox):
    """A factory of clients for one fresh, isolated sandbox company."""
    employee_token = tripletex_sandbox.new_company(seed="empty")
    clients: list[TripletexClient] = []

    def make(**kw: Any) -> TripletexClient:
        options: dict[str, Any] = {
            "base_url": tripletex_sandbox.base_url,
            "consumer_token": tripletex_sandbox.consumer_token,
            "employee_token": employee_token,
            "backoff_factor": 0.05,
            "rate_limited_backoff_seconds": 0.2,
            "max_wait_seconds": 2.0,
        }
        options.update(kw)
        clients.append(TripletexClient(**options))
        return clients[-1]

    yield make
    tripletex_sandbox.clear_faults()
    for client in clients:
        client.close()


@pytest.mark.integration
def test_sandbox_session_and_who_am_i(sandbox_client):
    client = sandbox_client()

    me = client.who_am_i()
    client.who_am_i()

    assert me.get("employeeId") or me.get("employee")
    assert client.requests_by_endpoint["PUT /token/session/:create"] == 1


@pytest.mark.integration
def test_sandbox_customer_round_trip_and_paging(sandbox_client):
    client = sandbox_client(page_size=2)
    created = [
        client.post("/customer", {"name": f"Kunde {n}", "customerNumber": 5000 + n})
        for n in range(5)
    ]

    rows = client.list_all("/customer", fields=CUSTOMER_FIELDS)

    assert sorted(r["customerNumber"] for r in rows) == [5000, 5001, 5002, 5003, 5004]
    assert client.get(f"/customer/{created[0]['id']}")["name"] == "Kunde 0"
    assert client.requests_by_endpoint["GET /customer"] == 3


@pytest.mark.integration
def test_sandbox_faults_are_retried(sandbox_client, tripletex_sandbox):
    client = sandbox_client()
    client.post("/customer", {"name": "Kunde", "customerNumber": 4242})
    tripletex_sandbox.add_fault("/v2/customer", method="GET", status=503, count=2)

    rows = client.list_all("/customer", {"customerAccountNumber": [4242]})

    assert [r["customerNumber"] for r in rows] == [4242]
    assert client.requests_by_endpoint["GET /customer"] == 3


@pytest.mark.integration
def test_sandbox_validation_error_is_typed(sandbox_client):
    client = sandbox_client()
    with pytest.raises(TripletexApiError) as info:
        client.post("/customer", {"customerNumber": 1})

    assert info.value.status == 422
    assert any(m["field"] == "name" for m in info.value.validation_messages)
    assert client.consumer_token not in str(info.value)


@pytest.mark.integration
def test_sandbox_conditional_get_detects_no_change_then_a_change(sandbox_client):
    client = sandbox_client()
    client.post("/customer", {"name": "Før", "customerNumber": 7001})

    first = client.get_page_conditional("/customer", fields=CUSTOMER_FIELDS)
    again = client.get_page_conditional(
        "/customer", fields=CUSTOMER_FIELDS, if_none_match=first.version_digest
    )
    client.post("/customer", {"name": "Etter", "customerNumber": 7002})
    changed = client.get_page_conditional(
        "/customer", fields=CUSTOMER_FIELDS, if_none_match=first.version_digest
    )

    assert first.version_digest and [c["customerNumber"] for c in first.values] == [7001]
    assert again.not_modified and again.values is None
    assert not changed.not_modified
    assert changed.version_digest != first.version_digest
    assert sorted(c["customerNumber"] for c in changed.values) == [7001, 7002]


@pytest.mark.integration
def test_sandbox_stale_version_is_a_409_and_not_retried(sandbox_client):
    client = sandbox_client()
    customer = client.post("/customer", {"name": "Kunde", "customerNumber": 7100})
    client.put(f"/customer/{customer['id']}", {"version": customer["version"], "name": "Ny"})

    with pytest.raises(TripletexApiError) as info:
        client.put(f"/customer/{customer['id']}", {"version": customer["version"], "name": "Gml"})

    assert info.value.status == 409
    assert client.requests_by_endpoint["PUT /customer/{id}"] == 2


@pytest.mark.integration
def test_sandbox_wrong_employee_token_is_a_401_without_secrets(tripletex_sandbox, caplog):
    client = TripletexClient(
        base_url=tripletex_sandbox.base_url,
        consumer_token=tripletex_sandbox.consumer_token,
        employee_token="employee-SECRET-does-not-exist",
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(TripletexApiError) as info:
        client.who_am_i()

    assert info.value.status == 401
    for text in (str(info.value), repr(info.value), caplog.text):
        assert "employee-SECRET-does-not-exist" not in text
        assert tripletex_sandbox.consumer_token not in text


@pytest.fixture(scope="module")
def rate_limited_tripletex():
    """A separate Tripletex sandbox that refuses more than 5 requests per second."""
    from sync_pipeline.sandbox.process import SandboxProcess

    with SandboxProcess.start("tripletex", "--seed", "empty", "--rate-limit", "5/1") as sandbox:
        yield sandbox


@pytest.mark.integration
@pytest.mark.parametrize("client_window", [None, 5], ids=["server-headers", "client-window"])
def test_sandbox_rate_limit_is_respected_without_429s(rate_limited_tripletex, client_window):
    client = TripletexClient(
        base_url=rate_limited_tripletex.base_url,
        consumer_token=rate_limited_tripletex.consumer_token,
        employee_token=rate_limited_tripletex.new_company(seed="empty"),  # its own budget
        rate_limit_requests=client_window,
        rate_limit_seconds=1.0,
    )

    for _ in range(10):
        client.get("/token/session/%3EwhoAmI")

    assert client.requests_made == 11, "session + 10 calls, none repeated after a 429"
    assert client.rate_limit_wait_seconds > 0


# -- entity-level calls (what the sync asks for) -------------------------------------------------


@pytest.mark.integration
def test_C2_entity_calls_see_inactive_customers_in_their_second_pass(sandbox_client):
    client = sandbox_client()
    active = client.post("/customer", {"name": "Aktiv AS", "customerNumber": 8101})
    inactive = client.post(
        "/customer", {"name": "Sovende AS", "customerNumber": 8102, "isInactive": True}
    )

    found = client.find_by_key("customer", " 8102 ")
    records = client.get_many("customer", [active["id"], inactive["id"], 999_999])

    assert found is not None and (found.id, found.key) == (inactive["id"], "8102")
    assert found.version == inactive["version"]
    assert sorted(r["id"] for r in records) == sorted([active["id"], inactive["id"]])
    assert client.find_by_key("customer", "8199") is None
    assert client.find_by_key("customer", None) is None


@pytest.mark.integration
def test_G7_exists_is_false_only_for_a_404(sandbox_client, tripletex_sandbox):
    client = sandbox_client(max_retries=0)
    customer = client.post("/customer", {"name": "Finnes AS", "customerNumber": 8201})

    assert client.exists("customer", customer["id"])
    assert not client.exists("customer", 999_999)
    tripletex_sandbox.add_fault(f"/v2/customer/{customer['id']}", method="GET", status=500)
    with pytest.raises(TripletexApiError):  # an error is no proof of a deletion
        client.exists("customer", customer["id"])


@pytest.mark.integration
def test_G4_create_many_pairs_each_body_with_its_record_by_key(sandbox_client):
    client = sandbox_client()
    bodies = [{"name": "Én AS", "customerNumber": 8301}, {"name": "To AS", "customerNumber": 8302}]

    written = client.create_many("customer", bodies)
    by_key = {
        client.key_of("customer", r): r["id"]
        for r in client.list_all("/customer", fields="id,customerNumber")
    }

    assert [w.key for w in written] == ["8301", "8302"]
    assert [w.id for w in written] == [by_key["8301"], by_key["8302"]]


@pytest.mark.integration
def test_G8_updates_batch_where_tripletex_has_put_list_and_singly_elsewhere(sandbox_client):
    client = sandbox_client()
    customer = client.post("/customer", {"name": "Gammel AS", "customerNumber": 8401})
    department = client.list_all("/department", fields="id")[0]["id"]
    employee = client.post(
        "/employee",
        {"firstName": "Ola", "lastName": "Nordmann", "employeeNumber": "8402",
         "userType": "NO_ACCESS", "department": {"id": department}},
    )  # fmt: skip

    assert client.can_update_many("customer") and client.can_update_many("project")
    assert not client.can_update_many("employee")  # there is no PUT /employee/list
    updated = client.update_many(
        "customer", [{"id": customer["id"], "version": customer["version"], "name": "Ny AS"}]
    )
    one = client.update_one(
        "employee", employee["id"], {"version": employee["version"], "lastName": "Hansen"}
    )

    assert updated[customer["id"]].version != customer["version"]
    assert one is not None and one.id == employee["id"]
    assert client.get(f"/customer/{customer['id']}")["name"] == "Ny AS"
    assert client.get(f"/employee/{employee['id']}")["lastName"] == "Hansen"


@pytest.mark.integration
def test_listing_walks_both_customer_passes_and_keeps_unchanged_pages(sandbox_client):
    client = sandbox_client(page_size=2)
    for n in range(3):
        client.post("/customer", {"name": f"Kunde {n}", "customerNumber": 8500 + n})
    client.post("/customer", {"name": "Sovende", "customerNumber": 8599, "isInactive": True})

    first = list(client.iter_listing("customer"))
    digests: dict[str, list[str | None]] = {}
    for listed in first:
        digests.setdefault(listed.listing, []).append(listed.page.version_digest)
    sizes = {(p.listing, p.number): len(p.page.values or []) for p in first}
    again = list(client.iter_listing("customer", digests, sizes))

    assert [(p.listing, p.number) for p in first] == [
        ("active", 0),
        ("active", 1),
        ("inactive", 0),
    ]
    assert [(p.listing, p.number) for p in again] == [(p.listing, p.number) for p in first]
    assert all(p.page.not_modified for p in again)
