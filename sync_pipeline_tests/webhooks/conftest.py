"""Fixtures for the receiver: a tenants file with webhook secrets, an app over a temp spool."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from sync_pipeline.webhooks import spool
from sync_pipeline.webhooks.app import create_app

TX_SECRET = "tripletex-secret-42"
SVENN_SECRET = "svenn-secret-0123456789"


def tenants_yaml(tenants: dict[str, dict], sandboxes=None) -> dict:
    def body(hooks):
        tx = sandboxes["tripletex"] if sandboxes else None
        sv = sandboxes["svenn"] if sandboxes else None
        return {
            "mode": "active",
            "svenn": {
                "base_url": sv.base_url if sv else "http://127.0.0.1:1/api/v1",
                "api_key": sv.key if sv else "k",
            },
            "tripletex": {
                "base_url": tx.base_url if tx else "http://127.0.0.1:1/v2",
                "consumer_token": tx.consumer_token if tx else "c",
                "employee_token": tx.employee_token if tx else "e",
            },
            "webhooks": hooks,
        }

    return {"tenants": {key: body(hooks) for key, hooks in tenants.items()}}


@pytest.fixture
def tenants_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.yaml"
    data = tenants_yaml(
        {
            "acme": {"tripletex_secret": TX_SECRET, "svenn_secret": SVENN_SECRET},
            "svennonly": {"svenn_secret": SVENN_SECRET},
        }
    )
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def spool_file(tmp_path: Path) -> Path:
    return tmp_path / "spool.sqlite"


@pytest.fixture
def receiver(tenants_file, spool_file):
    with TestClient(create_app(tenants_file=tenants_file, spool_file=spool_file)) as client:
        yield client


def spooled(spool_file: Path) -> list[tuple]:
    if not spool_file.exists():
        return []
    with spool.connect(spool_file) as conn:
        return conn.execute(
            "SELECT source, tenant, delivery_id, entity, action, record_id, version"
            " FROM deliveries ORDER BY seq"
        ).fetchall()


def tripletex_delivery(
    event="customer.update", record_id=7, value=None, secret=TX_SECRET, key=None
) -> tuple[bytes, dict[str, str]]:
    key = key or str(uuid.uuid4())
    if value is None and not event.endswith(".delete"):
        value = {"id": record_id, "version": 3}
    body = json.dumps(
        {"value": value, "event": event, "subscriptionId": 1, "id": record_id}
    ).encode()
    mac = hmac.new(secret.encode(), key.encode() + b"&" + body, hashlib.sha512).digest()
    return body, {"idempotency-key": key, "x-request-signature": base64.b64encode(mac).decode()}


def svenn_delivery(
    event="project.updated", record_id=5, version=2, secret=SVENN_SECRET, delivery=None
) -> tuple[bytes, dict[str, str]]:
    delivery = delivery or str(uuid.uuid4())
    body = json.dumps(
        {
            "id": delivery,
            "event": event,
            "occurred_at": "2026-11-29T10:00:00.000000Z",
            "data": {"id": record_id, "version": version},
        }
    ).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Svenn-Delivery": delivery, "Svenn-Signature": f"sha256={sig}"}


class ReceiverServer:
    """The receiver on a real loopback port (uvicorn in a thread), for the sandboxes to call.

    The socket is bound and listening before the thread starts, so a delivery that comes
    before uvicorn is ready waits in the backlog instead of being refused."""

    def __init__(self, tenants_file: Path, spool_file: Path):
        import socket
        import threading

        import uvicorn

        self.spool_file = spool_file
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        app = create_app(tenants_file=tenants_file, spool_file=spool_file)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> ReceiverServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()

    def wait_for(
        self, count: int, timeout: float = 30.0, where: Callable[[tuple], bool] | None = None
    ) -> list[tuple]:
        """The spooled deliveries once there are ``count`` (of those ``where`` accepts:
        the sync's own writes are delivered too, in any order), polling the spool, bounded."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            rows = spooled(self.spool_file)
            if len([r for r in rows if where is None or where(r)]) >= count:
                return rows
            if time.monotonic() > deadline:
                return []
            time.sleep(0.05)
