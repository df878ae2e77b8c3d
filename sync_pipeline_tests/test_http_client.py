"""The shared HTTP machinery: retries, Retry-After, 429 backoff, rate limiter, redaction.

Runs against a tiny scripted HTTP server on 127.0.0.1 (``StubServer``); waits are
observed through an injected sleeper, never measured.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sync_pipeline.resources.http import (
    ApiError,
    ApiSession,
    ApiUnavailableError,
    RateLimiter,
    endpoint_key,
    error_body,
    redact,
)

# -- a scripted loopback server (also used by the Tripletex and Svenn client tests) ----------


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] | None = None
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}


class StubServer:
    """Answers ``(method, path regex)`` routes with scripted replies; the last reply repeats."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], list[Any]]] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                reply = stub._reply_for(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                if isinstance(reply.body, str):
                    payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in (reply.headers or {}).items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if payload:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, method: str, path_regex: str, *replies: Reply | Any) -> StubServer:
        """Route; each reply is a ``Reply`` or a callable ``(Seen, n) -> Reply``."""
        self.routes.insert(0, (method.upper(), re.compile(path_regex), list(replies)))
        return self

    def _reply_for(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            for method, pattern, replies in self.routes:
                if method == seen.method and pattern.fullmatch(seen.route):
                    n = sum(
                        1 for s in self.seen if s.method == method and pattern.fullmatch(s.route)
                    )
                    reply = replies[min(n, len(replies)) - 1]
                    break
            else:
                return Reply(404, {"error": "no stub route"})
        return reply(seen, n) if callable(reply) else reply

    def requests_to(self, method: str, route_regex: str) -> list[Seen]:
        pattern = re.compile(route_regex)
        return [s for s in self.seen if s.method == method and pattern.fullmatch(s.route)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SleepRecorder:
    """Injected in place of ``time.sleep``: records waits and advances a fake clock."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.now += seconds

    def clock(self) -> float:
        with self._lock:
            return self.now


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def _generic_error(response: requests.Response, method: str, path: str) -> ApiError:
    body = error_body(response) or {}
    return ApiError(
        system="Test",
        status=response.status_code,
        message=str(body.get("message", "")),
        method=method,
        path=path,
    )


def make_session(url: str, sleeps: SleepRecorder, **kw: Any) -> ApiSession:
    options: dict[str, Any] = {
        "system": "Test",
        "base_url": f"{url}/v2",
        "error_factory": _generic_error,
        "max_retries": 3,
        "backoff_factor": 0.25,
        "backoff_jitter": 0.0,
        "rate_limited_backoff": 2.0,
        "clock": sleeps.clock,
        "sleeper": sleeps,
    }
    options.update(kw)
    return ApiSession(**options)


# -- retries -------------------------------------------------------------------------------


def test_get_is_retried_on_503_then_succeeds(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(503), Reply(503), Reply(200, {"values": []}))
    api = make_session(stub.url, sleeps)

    response = api.request("GET", "/project")

    assert response.json() == {"values": []}
    assert len(stub.requests_to("GET", "/v2/project")) == 3
    assert api.requests_made == 3
    assert api.retries_made == 2
    assert len(sleeps.waits) == 2 and all(w > 0 for w in sleeps.waits)
    assert sleeps.waits[1] > sleeps.waits[0], "backoff grows"


def test_post_is_not_retried_on_503(stub, sleeps):
    stub.add("POST", "/v2/project", Reply(503, {"message": "down"}), Reply(201, {"value": {}}))
    api = make_session(stub.url, sleeps)

    with pytest.raises(ApiError) as info:
        api.request("POST", "/project", json={"name": "x"})

    assert info.value.status == 503
    assert len(stub.requests_to("POST", "/v2/project")) == 1, "a POST may have been applied"


def test_post_is_retried_on_429_because_it_was_not_processed(stub, sleeps):
    stub.add("POST", "/v2/project", Reply(429), Reply(201, {"value": {"id": 1}}))
    api = make_session(stub.url, sleeps)

    response = api.request("POST", "/project", json={"name": "x"})

    assert response.status_code == 201
    assert len(stub.requests_to("POST", "/v2/project")) == 2


def test_get_is_retried_on_500_but_put_is_not(stub, sleeps):
    stub.add("GET", "/v2/customer/1", Reply(500), Reply(200, {"value": {"id": 1}}))
    stub.add("PUT", "/v2/customer/1", Reply(500), Reply(200, {"value": {"id": 1}}))
    api = make_session(stub.url, sleeps)

    assert api.request("GET", "/customer/1").status_code == 200
    with pytest.raises(ApiError) as info:
        api.request("PUT", "/customer/1", json={"name": "x"})

    assert info.value.status == 500
    assert len(stub.requests_to("GET", "/v2/customer/1")) == 2
    assert len(stub.requests_to("PUT", "/v2/customer/1")) == 1


def test_put_is_retried_on_502_and_504(stub, sleeps):
    stub.add("PUT", "/v2/customer/1", Reply(502), Reply(504), Reply(200, {"value": {}}))
    api = make_session(stub.url, sleeps)

    assert api.request("PUT", "/customer/1", json={}).status_code == 200
    assert len(stub.requests_to("PUT", "/v2/customer/1")) == 3


def test_retry_after_header_is_honoured(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(429, headers={"Retry-After": "7"}), Reply(200, {}))
    api = make_session(stub.url, sleeps)

    api.request("GET", "/project")

    assert sleeps.waits == [7.0]
    assert len(stub.requests_to("GET", "/v2/project")) == 2


def test_retry_after_on_503_is_honoured(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(503, headers={"Retry-After": "3"}), Reply(200, {}))
    api = make_session(stub.url, sleeps)

    api.request("GET", "/project")

    assert sleeps.waits == [3.0]


def test_tripletex_rate_limit_reset_header_sets_the_wait_on_429(stub, sleeps):
    stub.add(
        "GET",
        "/v2/project",
        Reply(429, headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "4"}),
        Reply(200, {}),
    )
    api = make_session(stub.url, sleeps)

    api.request("GET", "/project")

    assert 4.0 in sleeps.waits
    assert len(stub.requests_to("GET", "/v2/project")) == 2


def test_429_without_reset_header_backs_off_growing_then_succeeds(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(429), Reply(429), Reply(200, {"values": [1]}))
    api = make_session(stub.url, sleeps)

    response = api.request("GET", "/project")

    assert response.json() == {"values": [1]}
    assert sleeps.waits == [2.0, 4.0]


def test_waits_are_capped_by_max_wait(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(429, headers={"Retry-After": "3600"}), Reply(200, {}))
    api = make_session(stub.url, sleeps, max_wait=5.0)

    api.request("GET", "/project")

    assert sleeps.waits == [5.0]


def test_exhausted_retries_raise_the_last_status_as_typed_error(stub, sleeps):
    stub.add("GET", "/v2/project", Reply(503, {"message": "maintenance"}))
    api = make_session(stub.url, sleeps, max_retries=2)

    with pytest.raises(ApiError) as info:
        api.request("GET", "/project")

    assert info.value.status == 503
    assert info.value.message == "maintenance"
    assert info.value.is_transient
    assert len(stub.requests_to("GET", "/v2/project")) == 3


def test_client_errors_are_not_retried(stub, sleeps):
    stub.add("GET", "/v2/project/9", Reply(404, {"message": "Object not found"}))
    api = make_session(stub.url, sleeps)

    with pytest.raises(ApiError) as info:
        api.request("GET", "/project/9")

    assert info.value.status == 404 and not info.value.is_transient
    assert len(stub.seen) == 1
    assert sleeps.waits == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_raises_unavailable_without_the_token(sleeps, caplog):
    secret = "consumer-SECRET-123"
    api = make_session(
        f"http://127.0.0.1:{_closed_port()}", sleeps, max_retries=2, secrets=lambda: [secret]
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(ApiUnavailableError) as info:
        api.request(
            "PUT",
            f"/token/session/:create?consumerToken={secret}&employeeToken=emp-SECRET-9",
        )

    err = info.value
    assert err.status is None and err.is_transient
    assert "connection refused" in str(err)
    assert err.path == "/token/session/:create"
    for text in (str(err), repr(err), caplog.text):
        assert secret not in text
        assert "emp-SECRET-9" not in text
    assert len(sleeps.waits) == 2, "connection errors are retried (the request never left)"
    assert err.__cause__ is None and err.__suppress_context__


def test_read_timeout_on_get_is_retried_then_reported_as_unavailable(stub, sleeps):
    stub.add("GET", "/v2/slow", Reply(200, {}, delay=0.5))
    api = make_session(stub.url, sleeps, max_retries=1, timeout_seconds=0.1)

    with pytest.raises(ApiUnavailableError) as info:
        api.request("GET", "/slow")

    assert "read timeout" in str(info.value)
    assert len(stub.requests_to("GET", "/v2/slow")) == 2


def test_read_timeout_on_post_is_not_retried(stub, sleeps):
    stub.add("POST", "/v2/slow", Reply(201, {}, delay=0.5))
    api = make_session(stub.url, sleeps, max_retries=3, timeout_seconds=0.1)

    with pytest.raises(ApiUnavailableError):
        api.request("POST", "/slow", json={})

    assert len(stub.requests_to("POST", "/v2/slow")) == 1


def test_urllib3_debug_log_lines_do_not_show_query_tokens(stub, sleeps, caplog):
    stub.add("PUT", "/v2/token/session/:create", Reply(200, {"value": {"token": "t"}}))
    api = make_session(stub.url, sleeps)

    with caplog.at_level(logging.DEBUG):
        api.request("PUT", "/token/session/:create", params={"employeeToken": "emp-SECRET-7"})

    assert stub.seen[0].query["employeeToken"] == "emp-SECRET-7"
    assert "employeeToken=***" in caplog.text
    assert "emp-SECRET-7" not in caplog.text


# -- counters --------------------------------------------------------------------------------


def test_requests_are_counted_by_endpoint_template(stub, sleeps):
    stub.add("GET", "/v2/project/\\d+", Reply(503), Reply(200, {}))
    stub.add("GET", "/v2/project", Reply(200, {}))
    api = make_session(stub.url, sleeps)

    api.request("GET", "/project/12")
    api.request("GET", "/project/13?fields=id")
    api.request("GET", "/project", params={"from": 0})

    assert api.requests_by_endpoint == {"GET /project/{id}": 3, "GET /project": 1}
    assert api.requests_made == 4


def test_endpoint_key_strips_base_path_query_and_ids():
    assert endpoint_key("get", "/v2/project/42?fields=id", "/v2") == "GET /project/{id}"
    assert endpoint_key("PUT", "/token/session/:create") == "PUT /token/session/:create"


# -- errors and redaction ---------------------------------------------------------------------


def test_api_error_is_one_readable_line():
    err = ApiError(
        system="Tripletex",
        status=422,
        code=18000,
        message="Validering feilet.",
        validation_messages=[{"field": "startDate", "message": "Feltet må fylles ut."}],
        request_id="1234-abcd",
        method="post",
        path="/project?consumerToken=abc",
    )

    assert str(err) == (
        "Tripletex 422 (18000) POST /project: Validering feilet. "
        "startDate: Feltet må fylles ut. [request 1234-abcd]"
    )
    assert "abc" not in str(err).replace("abcd", "")
    assert repr(err).startswith("ApiError(")


def test_api_error_survives_pickling():
    import pickle

    err = ApiUnavailableError(system="Svenn", status=None, message="down", method="GET", path="/x")
    copy = pickle.loads(pickle.dumps(err))

    assert type(copy) is ApiUnavailableError
    assert str(copy) == str(err) == "Svenn unavailable GET /x: down."


def test_redact_masks_query_tokens_auth_headers_and_known_secrets():
    text = (
        "url=/v2/token?consumerToken=c1&employeeToken=e2&token=t3&api_key=k4 "
        "Authorization: Basic MDp0b2tlbg== Bearer abc.def and mysecret"
    )
    out = redact(text, ["mysecret"])

    for secret in ("c1", "e2", "t3", "k4", "MDp0b2tlbg==", "abc.def", "mysecret"):
        assert secret not in out
    assert "consumerToken=***" in out


def test_redact_leaves_text_readable_when_a_placeholder_secret_is_tiny():
    out = redact("Tripletex unavailable: connection refused", ["t", "x"])

    assert out == "Tripletex unavailable: connection refused"


# -- rate limiter (fake clock, no sleeping) -------------------------------------------------


def test_rate_limiter_allows_n_requests_per_sliding_window():
    sleeps = SleepRecorder()
    limiter = RateLimiter(3, 10.0, clock=sleeps.clock, sleeper=sleeps)
    starts = []
    for _ in range(7):
        limiter.acquire()
        starts.append(sleeps.clock())

    assert starts[:3] == [1000.0, 1000.0, 1000.0]
    assert starts[3:6] == [1010.0, 1010.0, 1010.0]
    assert starts[6] == 1020.0
    for i, start in enumerate(starts):
        in_window = [s for s in starts if start <= s < start + 10.0]
        assert len(in_window) <= 3, f"window at request {i} holds {len(in_window)}"


def test_rate_limiter_window_slides_rather_than_resets():
    sleeps = SleepRecorder()
    limiter = RateLimiter(2, 10.0, clock=sleeps.clock, sleeper=sleeps)
    limiter.acquire()  # t=1000
    sleeps.now += 6
    limiter.acquire()  # t=1006
    limiter.acquire()  # must wait until the first start leaves the window: t=1010

    assert sleeps.clock() == 1010.0
    assert sleeps.waits == [4.0]


def test_rate_limiter_obeys_server_exhausted_window_headers():
    sleeps = SleepRecorder()
    limiter = RateLimiter(None, 10.0, clock=sleeps.clock, sleeper=sleeps)

    limiter.observe({"X-Rate-Limit-Remaining": "5", "X-Rate-Limit-Reset": "8"})
    limiter.acquire()
    assert sleeps.waits == []

    limiter.observe({"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "8"})
    limiter.acquire()
    assert sleeps.waits == [8.0]

    limiter.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "3"})  # Svenn's names
    limiter.acquire()
    assert sleeps.waits == [8.0, 3.0]


def test_rate_limiter_off_never_waits():
    sleeps = SleepRecorder()
    limiter = RateLimiter(None, 10.0, clock=sleeps.clock, sleeper=sleeps)
    for _ in range(1000):
        limiter.acquire()
    assert sleeps.waits == []


def test_rate_limiter_is_shared_safely_between_threads():
    sleeps = SleepRecorder()
    limiter = RateLimiter(5, 10.0, clock=sleeps.clock, sleeper=sleeps)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                starts.append(sleeps.clock())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(starts) == 20
    assert len(limiter._starts) <= 5
    # 20 requests at 5 per 10 s need at least three full windows of waiting.
    assert max(starts) - min(starts) >= 30.0 - 1e-9


def test_session_limiter_spaces_real_requests(stub, sleeps):
    stub.add("GET", "/v2/ping", Reply(200, {}))
    api = make_session(stub.url, sleeps, rate_limit_requests=2, rate_limit_seconds=10.0)

    for _ in range(5):
        api.request("GET", "/ping")

    assert len(stub.seen) == 5
    assert sum(sleeps.waits) == pytest.approx(20.0)


def test_session_pauses_when_the_server_reports_no_remaining_requests(stub, sleeps):
    stub.add(
        "GET",
        "/v2/ping",
        Reply(200, {}, headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "6"}),
        Reply(200, {}, headers={"X-Rate-Limit-Remaining": "99", "X-Rate-Limit-Reset": "10"}),
    )
    api = make_session(stub.url, sleeps)

    api.request("GET", "/ping")
    assert sleeps.waits == []
    api.request("GET", "/ping")
    assert sleeps.waits == [6.0]
