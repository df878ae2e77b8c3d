"""Fixtures of the apply tests: a fresh company in each sandbox, clients, a temp DuckDB,
and a way to write plan rows as the rules would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync_pipeline.assets.apply.executor import PlanExecutor, load_plan
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient

TENANT = "acme"


@dataclass
class ApplyEnv:
    tenant: str
    db: SyncDuckDB
    tripletex: TripletexClient
    svenn: SvennClient
    tripletex_key: str
    svenn_key: str
    tripletex_sandbox: Any
    svenn_sandbox: Any
    tmp_path: Path

    def plan(self, run_id: str, *rows: dict[str, Any], apply: bool = True) -> None:
        """Insert plan rows (seq in the given order) as the rules step would."""
        with self.db.get_connection() as conn:
            for seq, row in enumerate(rows, start=1):
                conn.execute(
                    "INSERT INTO sync.plan (tenant, run_id, seq, entity, target, operation, "
                    "svenn_id, tripletex_id, key, label, payload, fields, rule_ids, reason, "
                    "expected_version, base_after, apply, held_reason, planned_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS JSON), ?, ?, NULL, ?, "
                    "CAST(? AS JSON), ?, NULL, now())",
                    [
                        self.tenant,
                        run_id,
                        row.get("seq", seq),
                        row["entity"],
                        row["target"],
                        row["operation"],
                        row.get("svenn_id"),
                        row.get("tripletex_id"),
                        row.get("key"),
                        row.get("label"),
                        json.dumps(row["payload"]) if row.get("payload") is not None else None,
                        row.get("fields"),
                        row.get("rule_ids"),
                        row.get("expected_version"),
                        json.dumps(row["base_after"])
                        if row.get("base_after") is not None
                        else None,
                        row.get("apply", apply),
                    ],
                )

    def execute(self, run_id: str, **options: Any):
        with self.db.get_connection() as conn:
            rows = load_plan(conn, self.tenant, [run_id])
        executor = PlanExecutor(
            tenant=self.tenant,
            run_id=run_id,
            connect=self.db.get_connection,
            tripletex=self.tripletex,
            svenn=self.svenn,
            retry_wait_seconds=0.01,
            **options,
        )
        return executor.run(rows)

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with self.db.get_connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    def links(self, entity: str) -> list[tuple]:
        return self.query(
            "SELECT svenn_id, tripletex_id, origin, state, base, tripletex_version, svenn_version "
            "FROM sync.links WHERE tenant = ? AND entity = ? ORDER BY svenn_id, tripletex_id",
            self.tenant,
            entity,
        )


@pytest.fixture
def apply_env(tripletex_sandbox, svenn_sandbox, tmp_path) -> ApplyEnv:
    tripletex_key = tripletex_sandbox.new_company()
    svenn_key = svenn_sandbox.new_company()
    tripletex = TripletexClient(
        base_url=tripletex_sandbox.base_url,
        consumer_token="test-consumer",
        employee_token=tripletex_key,
        rate_limit_requests=None,
        backoff_factor=0.01,
        rate_limited_backoff_seconds=0.05,
    )
    svenn = SvennClient(
        base_url=svenn_sandbox.base_url,
        api_key=svenn_key,
        backoff_factor=0.01,
        rate_limited_backoff_seconds=0.05,
    )
    env = ApplyEnv(
        TENANT,
        SyncDuckDB(database=str(tmp_path / "state.duckdb")),
        tripletex,
        svenn,
        tripletex_key,
        svenn_key,
        tripletex_sandbox,
        svenn_sandbox,
        tmp_path,
    )
    yield env
    tripletex_sandbox.clear_faults()
    svenn_sandbox.clear_faults()
    tripletex.close()
    svenn.close()


@pytest.fixture(autouse=True)
def _every_store(state_store: str) -> str:
    """Each test runs on both state-store backends (``SYNC_STORE``), the same SQL on each."""
    return state_store
