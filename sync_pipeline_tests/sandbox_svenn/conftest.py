"""Fixtures for the Svenn sandbox tests: an in-process app per test, and HTTP helpers.

Most tests talk to the ASGI app in process (fast, isolated: a fresh hub per
test); the tests of the command line, persistence and process lifecycle start
real servers with :class:`SandboxProcess`.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sync_pipeline.sandbox.svenn import create_app

API = "/api/v1"
KEY = "svenn-test-key"


class Svenn:
    """A TestClient bound to one company's key, with short helpers for the API."""

    def __init__(self, client: TestClient, key: str = KEY):
        self.client = client
        self.key = key
        self.hub = client.app.state.hub

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def request(self, method: str, path: str, *, headers=None, **kwargs):
        return self.client.request(
            method, API + path, headers={**self.auth, **(headers or {})}, **kwargs
        )

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, json=body, **kw)

    def patch(self, path, body, **kw):
        return self.request("PATCH", path, json=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, resource: str, body: dict) -> dict:
        resp = self.post(f"/{resource}", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def list_all(self, resource: str, **params) -> list[dict]:
        """Every record of a list, following next_cursor."""
        out, cursor = [], None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            resp = self.get(f"/{resource}", params=query)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            out += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    def other_company(self, key: str = "svenn-other-key", **options) -> Svenn:
        self.hub.create_company(key, "empty", options)
        return Svenn(self.client, key)


def make_client(**app_options) -> TestClient:
    app = create_app(startup_key=KEY, seed="empty", **app_options)
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def svenn() -> Svenn:
    with make_client() as client:
        yield Svenn(client)
