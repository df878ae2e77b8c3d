"""HTTP machinery shared by the Svenn and Tripletex clients.

Both APIs are rate limited, occasionally unavailable and authenticated with
secrets that must never reach an error message or a log line. This module
owns those concerns once: a pooled ``requests`` session with urllib3 retries
(only where a repeat is safe), a client-side sliding-window rate limiter that
also obeys the server's rate-limit headers, per-client request counters, typed
errors, and redaction.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypedDict
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

Sleeper = Callable[[float], None]
Clock = Callable[[], float]

# -- redaction -----------------------------------------------------------------------------

_SECRET_QUERY_RE = re.compile(
    r"(?i)\b(consumerToken|employeeToken|sessionToken|token|api[_-]?key|key)=([^&\s'\"#)]+)"
)
_AUTH_HEADER_RE = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+")


#: Shorter "secrets" (test placeholders like ``x``) are not masked as substrings: doing so
#: would mangle every message ("connec***ion refused") while protecting nothing real.
MIN_SECRET_LENGTH = 6


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask token-like query values, Authorization values and the given secrets in ``text``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    text = _SECRET_QUERY_RE.sub(r"\1=***", text)
    return _AUTH_HEADER_RE.sub(r"\1 ***", text)


class _RedactingLogFilter(logging.Filter):
    """urllib3 logs request lines at DEBUG, and Tripletex puts tokens in the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        record.msg, record.args = redact(message), ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactingLogFilter) for f in _logger.filters):
        _logger.addFilter(_RedactingLogFilter())


# -- errors --------------------------------------------------------------------------------

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ErrorEnvelope:
    """What an API's error body says, before redaction: the one shape both envelopes
    (Tripletex ``{status, code, message, validationMessages}``, Svenn ``{"error": {code,
    message, fields}}``) are read into. ``extra``: more texts for the error's constructor."""

    code: int | str | None = None
    message: Any = None
    fields: Sequence[tuple[Any, Any]] = ()
    request_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    """An API refused a request; carries what an operator needs, never a credential.

    ``path`` is the request path without its query string (queries may hold tokens).
    """

    system: str = "API"

    def __init__(
        self,
        *,
        status: int | None,
        message: str = "",
        code: int | str | None = None,
        validation_messages: Iterable[Mapping[str, Any]] = (),
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        system: str | None = None,
    ) -> None:
        if system is not None:
            self.system = system
        self.status = status
        self.code = code
        self.message = message or ""
        self.validation_messages: list[dict[str, Any]] = [
            {"field": m.get("field"), "message": m.get("message")} for m in validation_messages
        ]
        self.request_id = request_id
        self.method = method.upper()
        self.path = path.split("?", 1)[0]
        super().__init__(str(self))

    @classmethod
    def envelope(cls, body: dict[str, Any], response: requests.Response) -> ErrorEnvelope:
        """Where this API's error body keeps its code, message and field problems (per API)."""
        return ErrorEnvelope()

    @classmethod
    def from_response(
        cls,
        response: requests.Response,
        method: str,
        path: str,
        secrets: Iterable[str] = (),
    ) -> Self:
        """The error an unexpected answer means, every text from the server redacted (an
        API may echo a token back); a body that is not the API's envelope keeps its status
        and a readable message."""
        secrets = tuple(secrets)
        body = error_body(response)
        parsed = cls.envelope(body if isinstance(body, dict) else {}, response)

        def clean(text: Any) -> str:
            return redact(str(text), secrets)

        return cls(
            status=response.status_code,
            code=parsed.code,
            message=clean(parsed.message or fallback_message(response)),
            validation_messages=[
                {"field": clean(f) if f else None, "message": clean(m or "")}
                for f, m in parsed.fields
            ],
            request_id=parsed.request_id,
            method=method,
            path=path,
            **{k: clean(v) if v else None for k, v in parsed.extra.items()},
        )

    @property
    def is_transient(self) -> bool:
        """True when repeating the call later may succeed (rate limit, outage)."""
        return self.status is None or self.status in TRANSIENT_STATUSES

    def _head(self) -> str:
        code = f" ({self.code})" if self.code not in (None, "") else ""
        return f"{self.system} {self.status}{code}"

    def __str__(self) -> str:
        parts = [self._head(), f"{self.method} {self.path}:".strip()]
        text = self.message.strip()
        if text and not text.endswith((".", "!", "?")):
            text += "."
        if text:
            parts.append(text)
        for m in self.validation_messages:
            field = f"{m['field']}: " if m.get("field") else ""
            msg = str(m.get("message") or "").strip()
            parts.append(f"{field}{msg}".strip())
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(p for p in parts if p).replace("\n", " ")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), dict(self.__dict__)))


def _rebuild_error(cls: type[ApiError], state: dict[str, Any]) -> ApiError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


class ApiUnavailableError(ApiError):
    """The API could not be reached (connection refused, timeout) even after retries."""

    def _head(self) -> str:
        return f"{self.system} unavailable"


# -- retries -------------------------------------------------------------------------------

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RESET_HEADERS = ("X-Rate-Limit-Reset", "RateLimit-Reset")
_REMAINING_HEADERS = ("X-Rate-Limit-Remaining", "RateLimit-Remaining")


def _header_number(headers: Mapping[str, str], names: Iterable[str]) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(str(raw).strip())
        except ValueError:
            continue
    return None


class ApiRetry(Retry):
    """urllib3 ``Retry`` with the rules both APIs need.

    - 429 is retried for every method: the request was not processed.
    - 502/503/504 are retried for idempotent methods only; 500 only for GET/HEAD
      (a 500 on a write may have half-happened).
    - A connection that was never made (refused, connect timeout) is retried for every
      method: nothing was sent. Any other transport error (read timeout, a connection
      dropped or a TLS error after the request went out) is retried for idempotent
      methods only: a POST may have been committed late, and Tripletex has no
      idempotency key, so repeating it could create the record twice (G5).
    - The wait is ``Retry-After``, else (on 429) ``X-Rate-Limit-Reset``/``RateLimit-Reset``,
      else exponential backoff with jitter; Tripletex sends 429 without any reset
      header, so a bare 429 waits ``rate_limited_backoff`` seconds, doubling.
    - Every wait is capped at ``max_wait``; ``sleeper`` and ``on_retry`` are injectable
      so tests observe waits without sleeping and clients count every attempt.
    """

    def __init__(
        self,
        *args: Any,
        rate_limited_backoff: float = 2.0,
        max_wait: float = 120.0,
        sleeper: Sleeper | None = None,
        on_retry: Callable[[Any, str | None, str | None], None] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("allowed_methods", IDEMPOTENT_METHODS)
        kwargs.setdefault("raise_on_status", False)
        super().__init__(*args, **kwargs)
        self.rate_limited_backoff = rate_limited_backoff
        self.max_wait = max_wait
        self.sleeper = sleeper or time.sleep
        self.on_retry = on_retry

    def new(self, **kw: Any) -> ApiRetry:
        kw.setdefault("rate_limited_backoff", self.rate_limited_backoff)
        kw.setdefault("max_wait", self.max_wait)
        kw.setdefault("sleeper", self.sleeper)
        kw.setdefault("on_retry", self.on_retry)
        return super().new(**kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> ApiRetry:
        # urllib3 repeats errors it counts as neither connect nor read errors (e.g. a TLS
        # error while reading the answer) for every method; a POST is not repeated then.
        if (
            error is not None
            and not self._is_connection_error(error)
            and not self._is_method_retryable(method or "")
        ):
            raise error.with_traceback(_stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        method = method.upper()
        if status_code == 429:
            return True
        if status_code in (502, 503, 504):
            return self._is_method_retryable(method)
        if status_code == 500:
            return method in ("GET", "HEAD")
        return False

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0:
            return 0.0
        value = self.backoff_factor * (2 ** (attempts - 1))
        if self.backoff_jitter:
            value += random.random() * self.backoff_jitter
        return float(max(0.0, min(self.backoff_max, value)))

    def wait_for(self, response: Any = None) -> float:
        """Seconds to wait before the next attempt after ``response`` (None: transport error)."""
        if response is not None:
            hinted: float | None
            try:
                hinted = self.get_retry_after(response)
            except InvalidHeader:
                hinted = None
            if hinted is None and response.status == 429:
                hinted = _header_number(response.headers, _RESET_HEADERS)
            if hinted is not None and hinted > 0:
                return min(hinted, self.max_wait)
            if response.status == 429:
                streak = 0
                for entry in reversed(self.history):
                    if entry.status != 429:
                        break
                    streak += 1
                wait = self.rate_limited_backoff * (2 ** max(streak - 1, 0))
                if self.backoff_jitter:
                    wait += random.random() * self.backoff_jitter
                return min(wait, self.max_wait)
        return min(self.get_backoff_time(), self.max_wait)

    def sleep(self, response: Any = None) -> None:
        wait = self.wait_for(response)
        if wait > 0:
            self.sleeper(wait)
        if self.on_retry is not None:
            last = self.history[-1] if self.history else None
            self.on_retry(response, last.method if last else None, last.url if last else None)


# -- rate limiting -------------------------------------------------------------------------


class RateLimiter:
    """Sliding-window limiter: at most ``max_requests`` starts per ``per_seconds``.

    Shared by every thread using one client, so a run stays inside the API's budget
    instead of bouncing off 429s. ``max_requests=None`` switches the window off, but
    the server's own signal (remaining 0, reset N) is always obeyed via ``observe``.
    """

    def __init__(
        self,
        max_requests: int | None,
        per_seconds: float,
        *,
        clock: Clock = time.monotonic,
        sleeper: Sleeper = time.sleep,
        max_wait: float = 120.0,
    ) -> None:
        if max_requests is not None and max_requests < 1:
            raise ValueError("max_requests must be at least 1 (or None for no limit)")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.max_wait = max_wait
        self._clock = clock
        self._sleeper = sleeper
        self._starts: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.total_wait = 0.0

    def _wait_needed(self, now: float) -> float:
        wait = self._blocked_until - now
        if self.max_requests is not None:
            horizon = now - self.per_seconds
            while self._starts and self._starts[0] <= horizon:
                self._starts.popleft()
            if len(self._starts) >= self.max_requests:
                wait = max(wait, self._starts[0] + self.per_seconds - now)
        return wait

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    if self.max_requests is not None:
                        self._starts.append(now)
                    self.total_wait += waited
                    return waited
            self._sleeper(wait)
            waited += wait

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pause everyone when the server reports an exhausted window."""
        remaining = _header_number(headers, _REMAINING_HEADERS)
        if remaining is None or remaining > 0:
            return
        reset = _header_number(headers, _RESET_HEADERS)
        if not reset or reset <= 0:
            return
        with self._lock:
            until = self._clock() + min(reset, self.max_wait)
            self._blocked_until = max(self._blocked_until, until)


# -- the session -----------------------------------------------------------------------------

_NUMERIC_SEGMENT_RE = re.compile(r"^\d+$")

ErrorFactory = Callable[[requests.Response, str, str], ApiError]


def endpoint_key(method: str, path: str, base_path: str = "") -> str:
    """``GET /project/{id}`` for ``GET /v2/project/42?fields=…``: counters group by this."""
    path = path.split("?", 1)[0]
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    segments = ["{id}" if _NUMERIC_SEGMENT_RE.match(s) else s for s in path.split("/")]
    return f"{method.upper()} {'/'.join(segments) or '/'}"


class RequestOptions(TypedDict, total=False):
    """What a client passes on to :meth:`ApiSession.request` besides method and path."""

    params: Mapping[str, Any] | None
    json: Any
    headers: Mapping[str, str] | None
    expected: Collection[int]
    resend_safe: bool


class ApiSession:
    """One pooled, retrying, rate-limited session to one API, with request counters.

    The clients build URLs from ``base_url`` + path, pass auth per call and turn
    unexpected statuses into their own typed error via ``error_factory``.
    """

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        error_factory: ErrorFactory,
        timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = 10.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_jitter: float | None = None,
        rate_limited_backoff: float = 2.0,
        max_wait: float = 120.0,
        rate_limit_requests: int | None = None,
        rate_limit_seconds: float = 10.0,
        secrets: Callable[[], Iterable[str]] = tuple,
        clock: Clock = time.monotonic,
        sleeper: Sleeper = time.sleep,
        pool_maxsize: int = 16,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path.rstrip("/")
        self._error_factory = error_factory
        self._timeout = (min(connect_timeout_seconds, timeout_seconds), timeout_seconds)
        self._secrets = secrets
        self.limiter = RateLimiter(
            rate_limit_requests,
            rate_limit_seconds,
            clock=clock,
            sleeper=sleeper,
            max_wait=max_wait,
        )
        self._counts_lock = threading.Lock()
        self.requests_by_endpoint: Counter[str] = Counter()
        self.retries_made = 0
        self.max_retries = max_retries
        retry = ApiRetry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            redirect=0,
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_factor if backoff_jitter is None else backoff_jitter,
            backoff_max=max_wait,
            rate_limited_backoff=rate_limited_backoff,
            max_wait=max_wait,
            sleeper=sleeper,
            on_retry=self._on_retry,
        )
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=retry)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        # For a POST the caller vouches may be re-sent (``resend_safe``): retried after a lost
        # response or a 502/503/504 like a PUT. urllib3 takes its Retry per adapter, hence a
        # second session; it opens no connection until used.
        self.resend_http = requests.Session()
        resend = HTTPAdapter(
            pool_connections=4,
            pool_maxsize=pool_maxsize,
            max_retries=retry.new(allowed_methods=IDEMPOTENT_METHODS | {"POST"}),
        )
        self.resend_http.mount("http://", resend)
        self.resend_http.mount("https://", resend)

    # counters ---------------------------------------------------------------------------
    @property
    def requests_made(self) -> int:
        """HTTP attempts sent, retries included."""
        with self._counts_lock:
            return sum(self.requests_by_endpoint.values())

    @property
    def rate_limit_wait_seconds(self) -> float:
        """Time spent waiting for the client-side window or the server's reset."""
        return self.limiter.total_wait

    def _count(self, key: str, *, retry: bool = False) -> None:
        with self._counts_lock:
            self.requests_by_endpoint[key] += 1
            if retry:
                self.retries_made += 1

    def _on_retry(self, response: Any, method: str | None, url: str | None) -> None:
        if response is not None:
            self.limiter.observe(response.headers)
        self.limiter.acquire()
        self._count(endpoint_key(method or "?", url or "", self._base_path), retry=True)

    # requests ---------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        expected: Collection[int] = (200, 201, 204),
        resend_safe: bool = False,
    ) -> requests.Response:
        """Send one logical request (retries included); raise the API's typed error otherwise.

        ``resend_safe``: the caller knows that repeating this POST cannot duplicate anything,
        so it is retried like an idempotent method (lost response, 502/503/504).
        """
        method = method.upper()
        clean_path = "/" + path.lstrip("/").split("?", 1)[0]
        self.limiter.acquire()
        self._count(endpoint_key(method, clean_path))
        session = self.resend_http if resend_safe else self.http
        try:
            response = session.request(
                method,
                self.url(path),
                params=params,
                json=json,
                headers=dict(headers or {}),
                auth=auth,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            reason = self.redact(_transport_reason(exc))
            logger.warning("%s %s %s unavailable: %s", self.system, method, clean_path, reason)
            raise ApiUnavailableError(
                system=self.system,
                status=None,
                message=f"{reason} (after up to {self.max_retries} retries)",
                method=method,
                path=clean_path,
            ) from None
        self.limiter.observe(response.headers)
        if response.status_code not in expected:
            raise self._error_factory(response, method, clean_path)
        return response

    def close(self) -> None:
        self.http.close()
        self.resend_http.close()


def _transport_reason(exc: requests.RequestException) -> str:
    """A short cause without the URL (which may carry a token in its query)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MaxRetryError) and cause.reason is not None:
            cause = cause.reason
            continue
        if isinstance(cause, requests.ConnectTimeout | requests.ReadTimeout):
            pass
        elif isinstance(cause, requests.RequestException) and cause.args:
            inner = cause.args[0]
            if isinstance(inner, BaseException):
                cause = inner
                continue
        break
    text = str(cause)
    if isinstance(cause, NameResolutionError):
        return "host not found"
    if isinstance(cause, NewConnectionError):
        return "connection refused" if "refused" in text.lower() else "cannot connect"
    if isinstance(cause, ConnectTimeoutError | requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(cause, ReadTimeoutError | requests.ReadTimeout):
        return "read timeout"
    if isinstance(cause, SSLError | requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(cause, ProtocolError):
        return "connection closed by server"
    return "connection failed"


def error_body(response: requests.Response) -> Any:
    """The decoded JSON error body, or None when the server sent something else."""
    try:
        return response.json()
    except ValueError:
        return None


def fallback_message(response: requests.Response) -> str:
    """A readable message for a non-JSON error body (e.g. a proxy's HTML page)."""
    text = (response.text or "").strip()
    if text and not text.startswith("<") and len(text) <= 300:
        return text
    return response.reason or "HTTP error"


class ApiClient(BaseModel):
    """What both API clients share: one pooled :class:`ApiSession` per client, built
    lazily, request counters, and secrets masked in ``repr`` and in every error.

    A client is built per tenant from the tenants file (``TenantConfig.tripletex_client``),
    not registered as a Dagster resource, so nothing tears it down for its user: whoever
    builds one closes it (``close()`` or ``with client:``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: ClassVar[str] = "API"
    #: The exception this API's error envelope becomes.
    error_type: ClassVar[type[ApiError]] = ApiError
    #: Fields that hold secrets: masked in repr, redacted from errors and logs.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    base_url: str = Field(description="API root (with its version prefix).")
    timeout_seconds: float = 30.0
    max_retries: int = Field(default=5, ge=0)
    backoff_factor: float = Field(default=0.5, ge=0)
    rate_limited_backoff_seconds: float = Field(
        default=2.0, ge=0, description="Wait after a 429 without reset header; doubles."
    )
    max_wait_seconds: float = Field(default=120.0, gt=0)
    rate_limit_requests: int | None = Field(
        default=None, description="Client-side budget per window; None = no client window."
    )
    rate_limit_seconds: float = 10.0

    _api: ApiSession | None = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)
    _clock: Clock | None = PrivateAttr(default=None)
    _sleeper: Sleeper | None = PrivateAttr(default=None)

    def use_clock(self, *, monotonic: Clock | None = None, sleeper: Sleeper | None = None) -> Self:
        """Replace the monotonic clock and sleep (tests); call before any request."""
        if monotonic is not None:
            self._clock = monotonic
        if sleeper is not None:
            self._sleeper = sleeper
        return self

    def key_field(self, entity: str) -> str:
        """The field that holds an entity's key (number) in this API."""
        raise NotImplementedError

    def key_of(self, entity: Any, record: Mapping[str, Any]) -> str | None:
        """The record's key as this API names it, trimmed; None when empty."""
        key = record.get(self.key_field(entity))
        return str(key).strip() if key not in (None, "") else None

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self.secret_fields else value)

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (getattr(self, f) for f in self.secret_fields) if s)

    def _error(self, response: requests.Response, method: str, path: str) -> ApiError:
        """The API's own error envelope as its typed exception, secrets redacted."""
        return self.error_type.from_response(response, method, path, self._secrets())

    def _incomplete_listing(
        self, problem: str, path: str, code: str = "incomplete_listing"
    ) -> ApiError:
        """G7: a page that is not one (no envelope, a record without id) is an error, never
        an empty page or the end of the listing."""
        return self.error_type(status=200, code=code, message=problem, method="GET", path=path)

    def _http(self) -> ApiSession:
        with self._lock:
            if self._api is None:
                self._api = ApiSession(
                    system=self.system,
                    base_url=self.base_url,
                    error_factory=self._error,
                    timeout_seconds=self.timeout_seconds,
                    max_retries=self.max_retries,
                    backoff_factor=self.backoff_factor,
                    rate_limited_backoff=self.rate_limited_backoff_seconds,
                    max_wait=self.max_wait_seconds,
                    rate_limit_requests=self.rate_limit_requests,
                    rate_limit_seconds=self.rate_limit_seconds,
                    secrets=self._secrets,
                    clock=self._clock or time.monotonic,
                    sleeper=self._sleeper or time.sleep,
                )
            return self._api

    @property
    def requests_made(self) -> int:
        """HTTP requests sent by this client (retries included)."""
        return self._api.requests_made if self._api else 0

    @property
    def requests_by_endpoint(self) -> dict[str, int]:
        """Requests per ``METHOD /path/{id}``, for run metadata and benchmarks."""
        return dict(self._api.requests_by_endpoint) if self._api else {}

    @property
    def rate_limit_wait_seconds(self) -> float:
        """Seconds this client waited to stay inside the rate limit."""
        return self._api.rate_limit_wait_seconds if self._api else 0.0

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
