"""Start a sandbox server as a child process and talk to its control endpoints.

Used by the test session, the benchmarks and the demo: the child prints one
JSON line when it listens, so startup is awaited on that line, not on a timer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests


class SandboxStartError(RuntimeError):
    pass


@dataclass
class SandboxProcess:
    """A running sandbox (``kind`` is "tripletex" or "svenn")."""

    kind: str
    process: subprocess.Popen
    ready: dict[str, Any]
    http: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def start(cls, kind: str, *args: str, timeout: float = 60.0) -> SandboxProcess:
        """Start ``python -m sync_pipeline.sandbox KIND --port 0 ARGS`` and wait until it listens."""
        cmd = [sys.executable, "-m", "sync_pipeline.sandbox", kind, "--host", "127.0.0.1"]
        if "--port" not in args:
            cmd += ["--port", "0"]
        proc = subprocess.Popen(
            [*cmd, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0].strip():
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise SandboxStartError(f"{kind} sandbox did not start: {err.strip()[-2000:]}")
        return cls(kind, proc, json.loads(lines[0]))

    # -- addresses and credentials ---------------------------------------------------------
    @property
    def root_url(self) -> str:
        return self.ready["url"]

    @property
    def base_url(self) -> str:
        return self.ready["api"]

    @property
    def key_field(self) -> str:
        return "employee_token" if self.kind == "tripletex" else "api_key"

    @property
    def key(self) -> str:
        return self.ready[self.key_field]

    @property
    def employee_token(self) -> str:
        return self.ready["employee_token"]

    @property
    def consumer_token(self) -> str:
        return self.ready["consumer_token"]

    @property
    def api_key(self) -> str:
        return self.ready["api_key"]

    # -- control endpoints -----------------------------------------------------------------
    def control(self, method: str, path: str, json: Any = None, **params: Any) -> requests.Response:
        url = f"{self.root_url}/_sandbox/{path.lstrip('/')}"
        return self.http.request(method, url, json=json, params=params or None, timeout=120)

    def new_company(self, seed: str = "empty", key: str | None = None, **options: Any) -> str:
        """Register an isolated company; returns its key (employee token or API key)."""
        key = key or f"{self.kind}-{uuid.uuid4().hex[:12]}"
        resp = self.control(
            "POST", "companies", json={self.key_field: key, "seed": seed, **options}
        )
        resp.raise_for_status()
        return key

    def stats(self, key: str | None = None) -> dict[str, Any]:
        params = {self.key_field: key} if key else {}
        resp = self.control("GET", "stats", **params)
        resp.raise_for_status()
        return resp.json()

    def add_fault(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int | None = None,
        count: int = 1,
        delay_ms: int = 0,
        after_commit: bool = False,
        commit_delay_ms: int = 0,
        **rewrites: Any,
    ) -> None:
        """``rewrites``: ``hide_ids``, ``null_ids``, ``drop_fields`` (see ``core.Fault``)."""
        body = {"path": path, "count": count, "delay_ms": delay_ms, **rewrites}
        if method:
            body["method"] = method
        if status is not None:
            body["status"] = status
        if after_commit:
            body["after_commit"] = True
        if commit_delay_ms:
            body["commit_delay_ms"] = commit_delay_ms
        self.control("POST", "faults", json=body).raise_for_status()

    def clear_faults(self) -> None:
        self.control("DELETE", "faults").raise_for_status()

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait (state files are saved on a clean stop); kill if it hangs."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
