"""A tenant whose two companies hold a generated world, synced through the real ``sync_job``.

Runs go in-process (``execute_in_process``) or, for crash tests, through the CLI in a
child process that the test kills with SIGKILL. ``snapshot`` reads both systems through
their APIs and describes every record by keys (never ids), so two tenants that started
from the same world can be compared after different histories.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from sync_pipeline.jobs import sync_job
from sync_pipeline.partitions import FULL_EXTRACT_TAG
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline.tenants import TenantsResource

TENANT = "acme"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Every record write endpoint of both APIs (system, method, path regex), for faults.
WORLD_WRITE_PATHS = WRITE_FAULTS = [
    ("tripletex", "POST", r"^/v2/(customer|employee|project)/list$"),
    ("tripletex", "PUT", r"^/v2/((customer|project)/list|employee/\d+)$"),
    ("svenn", "POST", r"^/api/v1/(customers|employees|projects)(/bulk)?$"),
    ("svenn", "PATCH", r"^/api/v1/(customers|employees|projects)/\d+$"),
    ("svenn", "DELETE", r"^/api/v1/(customers|employees|projects)/\d+$"),
]


@dataclass
class WorldTenant:
    tripletex_sandbox: Any
    svenn_sandbox: Any
    tripletex_key: str
    svenn_key: str
    root: Path

    @classmethod
    def create(
        cls, tripletex_sandbox, svenn_sandbox, root: Path, world_seed: int | None, **settings: Any
    ) -> WorldTenant:
        """``settings``: extra tenant settings (e.g. ``default_project_manager_employee_number``);
        ``world_seed`` None: two empty companies (Tripletex with its token owner only)."""
        options: dict[str, Any] = (
            {"seed": "world", "world_seed": world_seed, "scale": "demo"}
            if world_seed is not None
            else {"seed": "empty"}
        )
        tenant = cls(
            tripletex_sandbox,
            svenn_sandbox,
            tripletex_sandbox.new_company(**options),
            svenn_sandbox.new_company(**options),
            root,
        )
        root.mkdir(parents=True, exist_ok=True)
        tenant.tenants_file.write_text(
            yaml.safe_dump(
                {
                    "tenants": {
                        TENANT: {
                            "mode": "active",
                            **settings,
                            "svenn": {
                                "base_url": svenn_sandbox.base_url,
                                "api_key": tenant.svenn_key,
                            },
                            "tripletex": {
                                "base_url": tripletex_sandbox.base_url,
                                "consumer_token": "test-consumer",
                                "employee_token": tenant.tripletex_key,
                            },
                        }
                    }
                }
            )
        )
        return tenant

    # -- places -----------------------------------------------------------------------------
    @property
    def tenants_file(self) -> Path:
        return self.root / "tenants.yaml"

    @property
    def db_path(self) -> Path:
        return self.root / "state.duckdb"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SYNC_DUCKDB_PATH": str(self.db_path),
            "SYNC_TENANTS_FILE": str(self.tenants_file),
            "SYNC_EXPORT_DIR": str(self.root / "exports"),
            "DAGSTER_HOME": str(self.root / "dagster_home"),
        }

    # -- runs ---------------------------------------------------------------------------------
    def run(
        self,
        *,
        full: bool = False,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """One whole ``sync_job`` run in this process (``full``: a full extract; ``tags``:
        more run tags, e.g. the webhook sensor's batch)."""
        from sync_pipeline import definitions

        defs = dg.Definitions(
            assets=list(definitions.defs.assets or []),
            asset_checks=list(definitions.defs.asset_checks or []),
            jobs=[sync_job],
            resources={
                "duckdb": SyncDuckDB(database=str(self.db_path)),
                "tenants": TenantsResource(tenants_file=str(self.tenants_file)),
            },
        )
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("tenants", [TENANT])
        before = os.environ.get("SYNC_EXPORT_DIR")
        os.environ["SYNC_EXPORT_DIR"] = str(self.root / "exports")
        try:
            return defs.resolve_job_def("sync_job").execute_in_process(
                partition_key=TENANT,
                instance=instance,
                raise_on_error=False,
                tags={**({FULL_EXTRACT_TAG: "true"} if full else {}), **(tags or {})} or None,
                run_config=run_config,
            )
        finally:
            if before is None:
                os.environ.pop("SYNC_EXPORT_DIR", None)
            else:
                os.environ["SYNC_EXPORT_DIR"] = before

    def start_cli_run(self) -> subprocess.Popen:
        """``sync-pipeline run`` in a child process (so a test can really kill it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "sync_pipeline.cli", "run", "--tenant", TENANT],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def kill_after_writes(
        self, proc: subprocess.Popen, writes: int, timeout: float | None = None
    ) -> int:
        """SIGKILL ``proc`` once the sandboxes counted ``writes`` record writes; returns the
        count at the kill (the process may be mid-call). A run on a DuckLake reaches its
        writes later (every statement asks the catalog), so it is given longer."""
        if timeout is None:
            timeout = 600 if os.environ.get("SYNC_STORE") == "ducklake" else 120
        start = self.writes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            done = self.writes() - start
            if done >= writes:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
                return done
            time.sleep(0.02)  # polling the observed state, not waiting for time to pass
        output = proc.stdout.read() if proc.stdout else ""
        raise AssertionError(f"run ended (rc={proc.poll()}) before {writes} writes:\n{output}")

    def slow_writes(self, delay_ms: int) -> None:
        sandboxes = {"tripletex": self.tripletex_sandbox, "svenn": self.svenn_sandbox}
        for system, method, path in WRITE_FAULTS:
            sandboxes[system].add_fault(path, method=method, delay_ms=delay_ms, count=100_000)

    # -- observation ------------------------------------------------------------------------
    def writes(self) -> int:
        return (
            self.tripletex_sandbox.stats(self.tripletex_key)["writes"]
            + self.svenn_sandbox.stats(self.svenn_key)["writes"]
        )

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with SyncDuckDB(database=str(self.db_path)).get_connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    def clients(self) -> tuple[TripletexClient, SvennClient]:
        return (
            TripletexClient(
                base_url=self.tripletex_sandbox.base_url,
                consumer_token="test-consumer",
                employee_token=self.tripletex_key,
                rate_limit_requests=None,
            ),
            SvennClient(base_url=self.svenn_sandbox.base_url, api_key=self.svenn_key),
        )

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every live record of both systems as sorted tuples of synced fields, refs as keys."""
        tx, sv = self.clients()
        try:
            t_emp = tx.list_all(
                "/employee", fields="id,employeeNumber,firstName,lastName,email,phoneNumberMobile"
            )
            t_cus = [
                c
                for inactive in (False, True)
                for c in tx.list_all(
                    "/customer",
                    {"isInactive": inactive},
                    "id,customerNumber,name,email,phoneNumber,organizationNumber,isInactive",
                )
            ]
            t_pro = tx.list_all(
                "/project",
                fields="id,number,name,startDate,endDate,isClosed,isInternal,customer(id),"
                "projectManager(id),participants(employee(id))",
            )
            s_emp, s_cus, s_pro = (sv.list_all(r) for r in ("employees", "customers", "projects"))
        finally:
            tx.close()
            sv.close()
        t_emp_no = {e["id"]: e["employeeNumber"] for e in t_emp}
        t_cus_no = {c["id"]: c["customerNumber"] for c in t_cus}
        s_emp_no = {e["id"]: e["employee_number"] for e in s_emp}
        s_cus_no = {c["id"]: c["customer_number"] for c in s_cus}

        def ref(mapping: dict, value: Any) -> Any:
            return mapping.get(value["id"]) if isinstance(value, dict) else mapping.get(value)

        def rows(records: list[dict], fields: tuple, refs: dict[str, tuple]) -> list[tuple]:
            out = []
            for r in records:
                values = [r.get(f) for f in fields]
                values += [ref(mapping, r.get(name)) for name, (mapping,) in refs.items()]
                out.append(tuple(str(v) for v in values))
            return sorted(out)

        return {
            "tripletex.employee": rows(
                t_emp,
                ("employeeNumber", "firstName", "lastName", "email", "phoneNumberMobile"),
                {},
            ),
            "tripletex.customer": rows(
                t_cus,
                (
                    "customerNumber",
                    "name",
                    "email",
                    "phoneNumber",
                    "organizationNumber",
                    "isInactive",
                ),
                {},
            ),
            "tripletex.project": rows(
                t_pro,
                ("number", "name", "startDate", "endDate", "isClosed", "isInternal"),
                {"customer": (t_cus_no,), "projectManager": (t_emp_no,)},
            ),
            "svenn.employee": rows(
                s_emp,
                ("employee_number", "first_name", "last_name", "email", "phone", "is_active"),
                {},
            ),
            "svenn.customer": rows(
                s_cus,
                ("customer_number", "name", "email", "phone", "organization_number", "is_active"),
                {},
            ),
            "svenn.project": rows(
                s_pro,
                ("display_id", "name", "start_date", "end_date", "status", "parent_id"),
                {"customer_id": (s_cus_no,), "project_manager_id": (s_emp_no,)},
            )
            + sorted(
                (
                    str(p["display_id"]),
                    str(sorted(str(s_emp_no.get(m)) for m in p.get("member_ids") or [])),
                )
                for p in s_pro
            ),
        }


def unexplained_records(tenant: WorldTenant) -> list[tuple]:
    """Live staged records that are neither linked (active, or detached on purpose because
    the counterpart was deleted, P8/C6) nor in the open error log."""
    found = []
    for side in ("svenn", "tripletex"):
        for entity, table in (
            ("employee", "employees"),
            ("customer", "customers"),
            ("project", "projects"),
        ):
            rows = tenant.query(
                f"SELECT ?, ?, s.id, s.label FROM staging.{side}_{table} s "
                "WHERE s.tenant = 'acme' AND NOT s.deleted "
                "AND NOT EXISTS (SELECT 1 FROM sync.links l WHERE l.tenant = s.tenant "
                f" AND l.entity = ? AND l.{side}_id = s.id) "
                "AND NOT EXISTS (SELECT 1 FROM sync.errors e WHERE e.tenant = s.tenant "
                f" AND e.entity = ? AND e.resolved_at IS NULL AND e.{side}_id = s.id)",
                side,
                entity,
                entity,
                entity,
            )
            found += rows
    return found


SYNCED_FIELDS = {
    "employee": ("employees", ("number", "first_name", "last_name", "email", "phone")),
    "customer": ("customers", ("number", "name", "email", "phone", "organization_number")),
    "project": ("projects", ("number", "name", "start_date", "end_date", "status")),
}


def differing_links(tenant: WorldTenant) -> list[tuple]:
    """Active links whose staged records differ in a synced field or in the project's
    customer (compared through the customer link)."""
    found = []
    for entity, (table, fields) in SYNCED_FIELDS.items():
        differs = " OR ".join(
            f"nullif(trim(CAST(s.{f} AS VARCHAR)), '') IS DISTINCT FROM "
            f"nullif(trim(CAST(t.{f} AS VARCHAR)), '')"
            for f in fields
        )
        found += tenant.query(
            f"SELECT l.entity, l.svenn_id, l.tripletex_id FROM sync.links l "
            f"JOIN staging.svenn_{table} s ON s.tenant = l.tenant AND s.id = l.svenn_id "
            f"JOIN staging.tripletex_{table} t ON t.tenant = l.tenant AND t.id = l.tripletex_id "
            f"WHERE l.tenant = 'acme' AND l.entity = ? AND l.state = 'active' AND ({differs})",
            entity,
        )
    found += tenant.query(
        "SELECT 'project.customer', s.id, t.id FROM sync.links l "
        "JOIN staging.svenn_projects s ON s.tenant = l.tenant AND s.id = l.svenn_id "
        "JOIN staging.tripletex_projects t ON t.tenant = l.tenant AND t.id = l.tripletex_id "
        "LEFT JOIN sync.links c ON c.tenant = l.tenant AND c.entity = 'customer' "
        " AND c.state = 'active' AND c.svenn_id = s.customer_id "
        "WHERE l.tenant = 'acme' AND l.entity = 'project' AND l.state = 'active' "
        "AND c.tripletex_id IS NOT NULL AND c.tripletex_id IS DISTINCT FROM t.customer_id"
    )
    return found


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            lines.append(f"{event.step_key}: {event.event_specific_data.error.message[:2000]}")
    return "\n".join(lines)
