"""Fixtures for the Tripletex sandbox tests: one server for the module, a fresh company per test.

``TripletexApi`` is a deliberately thin client (requests + Basic auth with a real session
token from ``PUT /token/session/:create``) so the tests see exactly what the server sends.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import requests

from sync_pipeline.sandbox.process import SandboxProcess


class TripletexApi:
    def __init__(self, sandbox: SandboxProcess, employee_token: str):
        self.sandbox = sandbox
        self.base = sandbox.base_url
        self.employee_token = employee_token
        self.http = requests.Session()
        self.session_token = self.new_session()
        self.http.auth = ("0", self.session_token)

    def new_session(self, days: int = 2) -> str:
        expires = (dt.date.today() + dt.timedelta(days=days)).isoformat()
        resp = requests.put(
            f"{self.base}/token/session/:create",
            params={
                "consumerToken": "test-consumer",
                "employeeToken": self.employee_token,
                "expirationDate": expires,
            },
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["value"]["token"]

    def request(self, method: str, path: str, body=None, **params) -> requests.Response:
        return self.http.request(
            method,
            self.base + path,
            params=params or None,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"} if body is not None else None,
            timeout=60,
        )

    def get(self, path, **params):
        return self.request("GET", path, **params)

    def post(self, path, body, **params):
        return self.request("POST", path, body, **params)

    def put(self, path, body, **params):
        return self.request("PUT", path, body, **params)

    def delete(self, path, **params):
        return self.request("DELETE", path, **params)

    # -- shortcuts for arranging data ------------------------------------------------------
    def create(self, resource: str, body: dict) -> dict:
        resp = self.post(f"/{resource}", body)
        assert resp.status_code == 201, resp.text
        return resp.json()["value"]

    def project(self, **overrides) -> dict:
        body = {"name": "Bad Storgata 1", "startDate": "2026-01-05", "projectManager": {"id": 1}}
        return self.create("project", {**body, **overrides})

    def customer(self, **overrides) -> dict:
        return self.create("customer", {"name": "Hansen Bygg AS", **overrides})

    def employee(self, **overrides) -> dict:
        body = {
            "firstName": "Kari",
            "lastName": "Nilsen",
            "userType": "STANDARD",
            "email": f"kari.{uuid.uuid4().hex[:10]}@example.no",
            "department": {"id": 1},
        }
        return self.create("employee", {**body, **overrides})


@pytest.fixture(scope="session")
def tx_sandbox():
    """A Tripletex sandbox started with the empty seed (tests register their own companies)."""
    with SandboxProcess.start("tripletex", "--seed", "empty") as sandbox:
        yield sandbox


@pytest.fixture
def api(tx_sandbox) -> TripletexApi:
    """A client for a fresh, empty company of its own."""
    return TripletexApi(tx_sandbox, tx_sandbox.new_company(seed="empty"))


@pytest.fixture(scope="session")
def openapi(tripletex_reference_dir: Path) -> dict:
    return json.loads((tripletex_reference_dir / "openapi-2.74.00.json").read_text())
