"""Rules that must hold once records are linked or matched (issue 11), end to end through
both sandboxes: each test starts from two empty companies and edits them through the APIs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline_tests.apply.harness import WorldTenant, failure_text


@dataclass
class Pair:
    tenant: WorldTenant
    tx: TripletexClient
    sv: SvennClient
    owner: int  # the Tripletex token owner, who may manage projects

    def sync(self) -> str:
        result = self.tenant.run()
        assert result.success, failure_text(result)
        return result.run_id

    def errors(self, code: str) -> list[dict[str, Any]]:
        rows = self.tenant.query(
            "SELECT entity, svenn_id, tripletex_id, details FROM sync.errors "
            "WHERE tenant = 'acme' AND code = ? AND resolved_at IS NULL ORDER BY ALL",
            code,
        )
        return [
            {"entity": e, "svenn_id": s, "tripletex_id": t, "details": json.loads(d or "null")}
            for e, s, t, d in rows
        ]

    def tx_project(self, **values: Any) -> dict[str, Any]:
        body = {"startDate": "2026-01-05", "projectManager": {"id": self.owner}, **values}
        return self.tx.post("/project", body)

    def sv_projects(self) -> list[dict[str, Any]]:
        return self.sv.list_all("projects")


@pytest.fixture
def pair(tripletex_sandbox, svenn_sandbox, tmp_path):
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, None)
    tx, sv = tenant.clients()
    owner = tx.get("/token/session/>whoAmI")["employeeId"]
    yield Pair(tenant, tx, sv, owner)
    tx.close()
    sv.close()


def test_P6_tripletex_invalid_number_not_created_in_svenn(pair):
    bad = pair.tx_project(name="Rørlegging", number="2026/14")
    pair.tx_project(name="Bad", number="Bø.12a")
    pair.sync()
    pair.sync()
    assert [p["display_id"] for p in pair.sv_projects()] == ["Bø.12a"]
    assert pair.errors("PROJECT_INVALID_NUMBER") == [
        {
            "entity": "project",
            "svenn_id": None,
            "tripletex_id": bad["id"],
            "details": {"key": "2026/14", "system": "Tripletex"},
        }
    ]
