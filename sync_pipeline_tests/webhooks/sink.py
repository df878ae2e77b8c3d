"""A loopback HTTP server that records webhook deliveries, for sandbox and receiver tests.

``fail_next(n, status)`` makes the next ``n`` deliveries fail; ``take()`` waits for the next
recorded delivery (a queue with a timeout: the test waits for the event, not for a time).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookSink:
    def __init__(self) -> None:
        self.deliveries: queue.Queue[Received] = queue.Queue()
        self._failures: list[int] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    status = sink._failures.pop(0) if sink._failures else 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink.deliveries.put(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def take(self, timeout: float = 15.0) -> Received:
        return self.deliveries.get(timeout=timeout)

    def nothing_more(self, timeout: float = 0.5) -> bool:
        try:
            self.deliveries.get(timeout=timeout)
        except queue.Empty:
            return True
        return False
