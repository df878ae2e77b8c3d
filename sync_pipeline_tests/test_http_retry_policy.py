"""G5 at the HTTP layer: a non-idempotent POST is repeated only when it surely did nothing.

A POST that may have reached the server (read timeout, dropped connection, TLS error
while reading, any 5xx) is never re-sent by the session: the write may have been
committed late, and Tripletex has no idempotency key. A connection that was never made
and a 429 (nothing done) are safe to repeat.
"""

from __future__ import annotations

import socket
import threading

import pytest
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from sync_pipeline.resources.http import ApiError, ApiRetry, ApiUnavailableError
from sync_pipeline_tests.test_http_client import (
    Reply,
    SleepRecorder,
    StubServer,
    make_session,
)


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def test_G5_a_post_is_not_retried_after_a_read_timeout(stub, sleeps):
    stub.add("POST", "/v2/employee/list", Reply(201, {"values": []}, delay=0.5))
    api = make_session(stub.url, sleeps, max_retries=3, timeout_seconds=0.1)

    with pytest.raises(ApiUnavailableError) as info:
        api.request("POST", "/employee/list", json=[{"employeeNumber": "7"}])

    assert "read timeout" in str(info.value)
    assert len(stub.requests_to("POST", "/v2/employee/list")) == 1
    assert api.retries_made == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_G5_a_post_is_not_retried_after_a_5xx(stub, sleeps, status):
    stub.add("POST", "/v2/customer/list", Reply(status), Reply(201, {"values": []}))
    api = make_session(stub.url, sleeps)

    with pytest.raises(ApiError) as info:
        api.request("POST", "/customer/list", json=[{"name": "A"}])

    assert info.value.status == status
    assert len(stub.requests_to("POST", "/v2/customer/list")) == 1


def test_G5_a_post_is_retried_after_a_429_because_nothing_was_done(stub, sleeps):
    stub.add("POST", "/v2/customer/list", Reply(429), Reply(201, {"values": []}))
    api = make_session(stub.url, sleeps)

    api.request("POST", "/customer/list", json=[{"name": "A"}])

    assert len(stub.requests_to("POST", "/v2/customer/list")) == 2


class _HangUpServer:
    """Reads each request (body included), then closes the connection without an answer."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests += 1

    def close(self) -> None:
        self.sock.close()


def test_G5_a_post_is_not_retried_when_the_connection_drops_after_the_body_was_sent(sleeps):
    server = _HangUpServer()
    try:
        api = make_session(server.url, sleeps, max_retries=3)
        with pytest.raises(ApiUnavailableError) as info:
            api.request("POST", "/project/list", json=[{"name": "P"}])
    finally:
        server.close()

    assert "connection closed by server" in str(info.value)
    assert server.requests == 1 and sleeps.waits == []


def test_G5_a_post_is_retried_when_the_connection_was_never_made(sleeps):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: connecting is refused
    api = make_session(f"http://127.0.0.1:{port}", sleeps, max_retries=2)

    with pytest.raises(ApiUnavailableError) as info:
        api.request("POST", "/project/list", json=[{"name": "P"}])

    assert "connection refused" in str(info.value)
    assert len(sleeps.waits) == 2, "the request never left, so repeating it is safe"


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(None, "/v2/x", "read timed out"),
        ProtocolError("Connection aborted.", ConnectionResetError()),
        SSLError("EOF occurred in violation of protocol"),  # urllib3 counts it as 'other'
    ],
    ids=["read-timeout", "reset", "tls-eof"],
)
def test_G5_the_retry_policy_never_repeats_a_post_that_may_have_arrived(error):
    retry = ApiRetry(total=5, connect=5, read=5, status=5, redirect=0)

    with pytest.raises(type(error)):
        retry.increment("POST", "/v2/employee/list", error=error)
    assert retry.increment("GET", "/v2/employee", error=error).total == 4


@pytest.mark.parametrize(
    "error",
    [
        NewConnectionError(None, "connection refused"),
        ConnectTimeoutError(None, "/v2/x", "connect timed out"),
    ],
    ids=["refused", "connect-timeout"],
)
def test_G5_the_retry_policy_repeats_a_post_that_never_left(error):
    retry = ApiRetry(total=5, connect=5, read=5, status=5, redirect=0)

    assert retry.increment("POST", "/v2/employee/list", error=error).total == 4
