"""Webhook deliveries shared by both sandboxes: signed POSTs, retries with backoff, a log.

A write handler only queues its events (the store's outbox, drained by the middleware
after the request); the sending happens on a background thread with a small pool, so a
slow or dead receiver never slows the sandbox's request path. Each delivery keeps its id
and body across retries (the receiver de-duplicates by it), is retried after each failure
(non-2xx, no answer within the timeout) along ``backoff_s`` until ``horizon_s`` has passed
since the change, and reports every attempt to its subscription (Tripletex counts failures
and disables a subscription after too many, API-NOTES §8.6).

The sandbox is offline by design: it delivers to loopback addresses only; a delivery to
any other host is logged as ``skipped`` and never sent.
"""

from __future__ import annotations

import collections
import heapq
import ipaddress
import itertools
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Seconds between attempts: the nth failure waits the nth entry (the last one repeats).
DEFAULT_BACKOFF_S: tuple[float, ...] = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: The receiver must answer within this many seconds (Svenn: 10 s).
DEFAULT_TIMEOUT_S = 10.0
#: Attempts kept in the log that ``GET /_sandbox/webhooks`` shows.
LOG_SIZE = 2000


def is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Delivery:
    """One event for one subscription; ``report(ok)`` is told each attempt's outcome and
    ``wanted()`` whether to go on (False: the subscription was disabled or deleted)."""

    id: str
    url: str
    body: bytes
    headers: dict[str, str]
    event: str
    report: Callable[[bool], None] = lambda ok: None
    wanted: Callable[[], bool] = lambda: True
    created: float = field(default_factory=time.monotonic)
    attempts: int = 0


class WebhookDispatcher:
    """A scheduler thread with a heap of due deliveries and a pool that sends them."""

    def __init__(
        self,
        *,
        backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S,
        horizon_s: float = 24 * 3600,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        workers: int = 4,
    ):
        self.backoff_s = tuple(backoff_s)
        self.horizon_s = horizon_s
        self.timeout_s = timeout_s
        self.workers = workers
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_SIZE)
        self.paused = False
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    # -- settings (``POST /_sandbox/webhooks``) ------------------------------------------------
    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        from sync_pipeline.sandbox.core import SandboxError

        backoff = body.get("backoff_s", self.backoff_s)
        if (
            not isinstance(backoff, (list, tuple))
            or not backoff
            or not all(isinstance(s, (int, float)) and s >= 0 for s in backoff)
        ):
            raise SandboxError("'backoff_s' must be a non-empty list of seconds")
        for name in ("horizon_s", "timeout_s"):
            value = body.get(name, getattr(self, name))
            if not isinstance(value, (int, float)) or value <= 0:
                raise SandboxError(f"'{name}' must be a positive number of seconds")
            setattr(self, name, float(value))
        paused = body.get("paused", self.paused)
        if not isinstance(paused, bool):
            raise SandboxError("'paused' must be true or false")
        with self._cond:
            self.backoff_s = tuple(float(s) for s in backoff)
            self.paused = paused
            self._cond.notify()
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "backoff_s": list(self.backoff_s),
            "horizon_s": self.horizon_s,
            "timeout_s": self.timeout_s,
            "paused": self.paused,
        }

    def status(self) -> dict[str, Any]:
        with self._cond:
            pending = len(self._heap) + self._in_flight
        return {**self.settings(), "pending": pending, "attempts": list(self.log)}

    # -- queue ---------------------------------------------------------------------------------
    def submit(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        if not is_loopback_url(delivery.url):
            self._log(delivery, None, "skipped: the sandbox delivers to loopback addresses only")
            return
        with self._cond:
            if self._closed:
                return
            if self._thread is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="webhook-send")
                self._thread = threading.Thread(
                    target=self._run, name="webhook-scheduler", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), delivery))
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self.log.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self.paused or not self._heap):
                    self._cond.wait()
                if self._closed:
                    return
                due, _, delivery = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                self._pool.submit(self._attempt, delivery)
            except RuntimeError:  # the pool is shut down
                return

    def _attempt(self, delivery: Delivery) -> None:
        try:
            if not delivery.wanted():
                self._log(delivery, None, "dropped: the subscription is no longer active")
                return
            delivery.attempts += 1
            status, error = self._send(delivery)
            ok = status is not None and 200 <= status < 300
            self._log(delivery, status, error)
            delivery.report(ok)
            if ok or not delivery.wanted():
                return
            waited = time.monotonic() - delivery.created
            step = self.backoff_s[min(delivery.attempts - 1, len(self.backoff_s) - 1)]
            if waited + step > self.horizon_s:
                self._log(delivery, None, "given up: retried for the whole horizon")
                return
            self.submit(delivery, step)
        finally:
            with self._cond:
                self._in_flight -= 1

    def _send(self, delivery: Delivery) -> tuple[int | None, str | None]:
        request = urllib.request.Request(
            delivery.url,
            data=delivery.body,
            method="POST",
            headers={"Content-Type": "application/json", **delivery.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError) as exc:  # refused, reset, timed out
            return None, f"{type(exc).__name__}: {exc}"

    def _log(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        self.log.append(
            {
                "delivery_id": delivery.id,
                "event": delivery.event,
                "url": delivery.url,
                "attempt": delivery.attempts,
                "status": status,
                "error": error,
                "at": time.time(),
            }
        )
