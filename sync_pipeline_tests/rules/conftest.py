"""Builders for the rule tests: both staged snapshots, the link state, and a Dagster run.

A test describes records in canonical terms (``svenn.project(1, number="100", ...)``),
links with their base, extracts and approvals; ``Rules.run()`` writes them into a temp
DuckDB file and materialises only the rule assets through Dagster, then returns the
plan, findings and conflicts of that run.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, materialize

from sync_pipeline.assets.rules import RULE_ASSETS
from sync_pipeline.generator import World
from sync_pipeline.model import COMMON_STAGING_COLUMNS, STAGING_COLUMNS, staging_table
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource
from sync_pipeline_tests.rules.worlds import stage_world

TENANT = "acme"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

_DEFAULTS: dict[str, dict[str, Any]] = {
    "project": {
        "number": None,
        "name": None,
        "start_date": None,
        "end_date": None,
        "status": "active",
        "customer_id": None,
        "project_manager_id": None,
        "member_ids": [],
        "parent_id": None,
        "is_internal": False,
        "is_offer": False,
    },
    "customer": {
        "number": None,
        "name": None,
        "email": None,
        "phone": None,
        "organization_number": None,
        "is_active": True,
    },
    "employee": {
        "number": None,
        "first_name": None,
        "last_name": None,
        "email": None,
        "phone": None,
        "is_active": True,
        "user_type": None,
        "department_id": None,
    },
}


@dataclass
class Side:
    name: str
    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"project": [], "customer": [], "employee": []}
    )

    def add(self, entity: str, id: int, **values: Any) -> dict[str, Any]:
        unknown = (
            set(values) - set(_DEFAULTS[entity]) - {"version", "modified_at", "deleted", "label"}
        )
        assert not unknown, f"unknown staging columns {unknown}"
        row = {
            "tenant": TENANT,
            "id": id,
            "version": values.pop("version", 1),
            "modified_at": values.pop("modified_at", None),
            "deleted": values.pop("deleted", False),
            **_DEFAULTS[entity],
            **values,
        }
        if self.name == "tripletex" and entity == "employee" and row["user_type"] is None:
            row["user_type"] = "NO_ACCESS"
        row.setdefault("label", None)
        row["label"] = row["label"] or " ".join(
            str(v) for v in (row["number"], row.get("name") or row.get("last_name")) if v
        )
        self.records[entity].append(row)
        return row

    def project(self, id: int, **values: Any) -> dict[str, Any]:
        values.setdefault("name", f"Prosjekt {id}")
        values.setdefault("start_date", date(2026, 1, 5))
        return self.add("project", id, **values)

    def customer(self, id: int, **values: Any) -> dict[str, Any]:
        values.setdefault("name", f"Kunde {id}")
        return self.add("customer", id, **values)

    def employee(self, id: int, **values: Any) -> dict[str, Any]:
        values.setdefault("first_name", "Kari")
        values.setdefault("last_name", f"Nordmann{id}")
        return self.add("employee", id, **values)


@dataclass
class Rules:
    tmp: Path
    svenn: Side = field(default_factory=lambda: Side("svenn"))
    tripletex: Side = field(default_factory=lambda: Side("tripletex"))
    links: list[dict[str, Any]] = field(default_factory=list)
    extracts: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=lambda: {"mass_delete_threshold": 1.0})
    #: A generated world to stage instead of the builders' records.
    world: World | None = None

    @property
    def db(self) -> str:
        return str(
            self.tmp / "plan_test.duckdb"
        )  # not rules.duckdb: the catalog would clash with the rules schema

    def link(
        self,
        entity: str,
        svenn_id: int | None,
        tripletex_id: int | None,
        base: dict | None,
        key: str | None = None,
        origin: str = "matched",
        state: str = "active",
    ) -> None:
        self.links.append(
            {
                "tenant": TENANT,
                "entity": entity,
                "svenn_id": svenn_id,
                "tripletex_id": tripletex_id,
                "key": key if key is not None else (base or {}).get("number"),
                "origin": origin,
                "state": state,
                "base": json.dumps(base) if base is not None else None,
                "tripletex_version": 1,
                "svenn_version": 1,
                "linked_at": T0,
                "last_synced_at": T0,
            }
        )

    def extract(self, system: str, entity: str, complete: bool, mode: str = "full") -> None:
        self.extracts.append(
            {
                "tenant": TENANT,
                "system": system,
                "entity": entity,
                "run_id": "x",
                "mode": mode,
                "complete": complete,
                "row_count": 0,
                "requests": 0,
                "started_at": datetime.now(UTC),
                "finished_at": datetime.now(UTC),
                "watermark": None,
                "error": None,
            }
        )

    def complete_extracts(self) -> None:
        for system in ("svenn", "tripletex"):
            for entity in ("project", "customer", "employee"):
                self.extract(system, entity, True)

    def _write(self) -> None:
        resource = SyncDuckDB(database=self.db)
        with resource.get_connection() as conn:
            if self.world is not None:
                stage_world(conn, TENANT, self.world)
            for side in () if self.world is not None else (self.svenn, self.tripletex):
                for entity, rows in side.records.items():
                    table = staging_table(side.name, entity)  # type: ignore[arg-type]
                    conn.execute(f"DELETE FROM {table}")
                    if rows:
                        cols = [*COMMON_STAGING_COLUMNS, *STAGING_COLUMNS[entity]]  # type: ignore[index]
                        frame = pd.DataFrame(rows)[cols]
                        conn.execute(f"INSERT INTO {table} SELECT {', '.join(cols)} FROM frame")
            for table, rows in (("sync.links", self.links), ("sync.extracts", self.extracts)):
                conn.execute(f"DELETE FROM {table}")
                if rows:
                    frame = pd.DataFrame(rows)  # noqa: F841
                    conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
            conn.execute("DELETE FROM sync.approvals")
            for action in self.approvals:
                conn.execute(
                    "INSERT INTO sync.approvals VALUES (?, ?, 'operator', now(), NULL)",
                    [TENANT, action],
                )

    def tenants_file(self) -> Path:
        path = self.tmp / "tenants.yaml"
        body = {
            "mode": "active",
            "svenn": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
            "tripletex": {
                "base_url": "http://127.0.0.1:9",
                "consumer_token": "c",
                "employee_token": "e",
            },
            **self.config,
        }
        path.write_text(yaml.safe_dump({"tenants": {TENANT: body}}))
        return path

    def run(self, write: bool = True) -> Result:
        if write:
            self._write()
        instance = _instance()
        outcome = materialize(
            RULE_ASSETS,
            partition_key=TENANT,
            instance=instance,
            resources={
                "duckdb": SyncDuckDB(database=self.db),
                "tenants": TenantsResource(tenants_file=str(self.tenants_file())),
            },
        )
        assert outcome.success
        return Result.load(self.db, outcome.run_id)


@functools.cache
def _instance() -> DagsterInstance:
    """One ephemeral instance for all rule tests: creating one per test costs seconds."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", [TENANT])
    return instance


@dataclass
class Result:
    run_id: str
    plan: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]

    @classmethod
    def load(cls, db: str, run_id: str) -> Result:
        with SyncDuckDB(database=db).get_connection() as conn:

            def rows(sql: str) -> list[dict[str, Any]]:
                cur = conn.execute(sql, [TENANT, run_id])
                names = [d[0] for d in cur.description]
                out = []
                for values in cur.fetchall():
                    row = dict(zip(names, values, strict=True))
                    for k in (
                        "payload",
                        "base_after",
                        "details",
                        "base_value",
                        "svenn_value",
                        "tripletex_value",
                    ):
                        if isinstance(row.get(k), str):
                            row[k] = json.loads(row[k])
                    out.append(row)
                return out

            return cls(
                run_id,
                rows(
                    "SELECT * EXCLUDE (planned_at) FROM sync.plan WHERE tenant = ? AND run_id = ? ORDER BY seq"
                ),
                rows(
                    "SELECT * FROM sync.findings WHERE tenant = ? AND run_id = ? ORDER BY code, svenn_id, tripletex_id"
                ),
                rows(
                    "SELECT * EXCLUDE (detected_at) FROM sync.conflicts WHERE tenant = ? AND run_id = ? ORDER BY field"
                ),
            )

    def ops(
        self, entity: str | None = None, operation: str | None = None, target: str | None = None
    ) -> list[dict]:
        return [
            r
            for r in self.plan
            if (entity is None or r["entity"] == entity)
            and (operation is None or r["operation"] == operation)
            and (target is None or r["target"] == target)
        ]

    def brief(self) -> list[tuple]:
        """(entity, target, operation, svenn_id, tripletex_id, payload) per plan row, in order."""
        return [
            (
                r["entity"],
                r["target"],
                r["operation"],
                r["svenn_id"],
                r["tripletex_id"],
                r["payload"],
            )
            for r in self.plan
        ]

    def codes(self) -> list[tuple]:
        return [(f["code"], f["entity"], f["svenn_id"], f["tripletex_id"]) for f in self.findings]


@pytest.fixture
def rules(tmp_path: Path) -> Rules:
    return Rules(tmp_path)


@pytest.fixture(autouse=True)
def _every_store(state_store: str) -> str:
    """Each test runs on both state-store backends (``SYNC_STORE``), the same SQL on each."""
    return state_store
