"""Run one or both sandbox servers with uvicorn, announcing readiness on stdout.

Tests and ``make demo`` start the servers as subprocesses and wait for the one
JSON line printed once the socket listens (``{"event": "ready", ...}``), so
nobody has to guess with sleeps; ``--port 0`` picks a free port and the line
says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

import uvicorn


class SandboxServer(uvicorn.Server):
    """A uvicorn server that leaves signals to :func:`serve` and reports its address."""

    def __init__(self, app: Any, *, host: str, port: int, announce: dict[str, Any]):
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
        super().__init__(config)
        self.announce = announce

    @contextlib.contextmanager
    def capture_signals(self):
        yield  # serve() installs one handler that stops every server

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            root = f"http://{host}:{port}"
            line = {"event": "ready", "url": root, **self.announce}
            line["api"] = root + line.pop("api_prefix", "")
            print(json.dumps(line), flush=True)


async def serve(servers: list[SandboxServer]) -> None:
    """Serve until SIGINT/SIGTERM, then stop all servers cleanly (state files saved)."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))
    print(json.dumps({"event": "stopped"}), flush=True, file=sys.stderr)
