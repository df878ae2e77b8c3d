"""Extraction of both sandboxes through Dagster: complete, faithful, robust, incremental.

Each test registers its own companies (``new_company(seed="demo")``), so the shared
start-up companies stay untouched. Faults are global to a sandbox server, so every test
that injects one clears them again.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sync_pipeline.assets.extract.assets import extract
from sync_pipeline.assets.extract.outputs import raw_key, staging_key
from sync_pipeline.assets.extract.svenn import SVENN_WATERMARK_OVERLAP
from sync_pipeline.model import ENTITIES
from sync_pipeline.partitions import FULL_EXTRACT_TAG
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import (
    CUSTOMER_FIELDS,
    EMPLOYEE_FIELDS,
    PROJECT_FIELDS,
    TripletexClient,
)
from sync_pipeline.sandbox.process import SandboxProcess
from sync_pipeline.tenants import TenantsResource

TENANT = "acme"
FAST_RETRIES = {"max_retries": 3, "backoff_seconds": 0.01}


class Harness:
    """Two demo companies, a tenants file, a DuckDB file and an ephemeral Dagster instance."""

    def __init__(self, tmp_path: Path, tripletex: SandboxProcess, svenn: SandboxProcess):
        self.tripletex, self.svenn = tripletex, svenn
        self.employee_token = f"tx-secret-{uuid.uuid4().hex}"
        self.consumer_token = f"consumer-secret-{uuid.uuid4().hex}"
        self.api_key = f"svenn-secret-{uuid.uuid4().hex}"
        tripletex.new_company(seed="demo", key=self.employee_token)
        svenn.new_company(seed="demo", key=self.api_key)
        self.tenants_file = tmp_path / "tenants.yaml"
        self.tenants_file.write_text(
            "tenants:\n"
            f"  {TENANT}:\n"
            "    mode: active\n"
            f'    svenn: {{base_url: "{svenn.base_url}", api_key: "{self.api_key}"}}\n'
            f'    tripletex: {{base_url: "{tripletex.base_url}", '
            f'consumer_token: "{self.consumer_token}", employee_token: "{self.employee_token}"}}\n',
            encoding="utf-8",
        )
        self.duckdb = SyncDuckDB(database=str(tmp_path / "pipeline.duckdb"))
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions("tenants", [TENANT])

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.employee_token, self.consumer_token, self.api_key)

    def tx_client(self, **kw: Any) -> TripletexClient:
        return TripletexClient(
            base_url=self.tripletex.base_url,
            consumer_token=self.consumer_token,
            employee_token=self.employee_token,
            rate_limit_requests=None,
            **kw,
        )

    def svenn_client(self) -> SvennClient:
        return SvennClient(base_url=self.svenn.base_url, api_key=self.api_key)

    def run(
        self,
        sides: tuple[str, ...] = ("svenn", "tripletex"),
        *,
        config: dict[str, Any] | None = None,
        full: bool = False,
        selection: list[dg.AssetKey] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """The ``extract`` step for ``sides`` (all their entities unless ``selection``),
        each side's client tuned by ``config``."""
        tuning = {side: {**FAST_RETRIES, **(config or {})} for side in ("svenn", "tripletex")}
        if selection is None:
            selection = [k(s, e) for s in sides for e in ENTITIES for k in (raw_key, staging_key)]
        return dg.materialize(
            [extract],
            partition_key=TENANT,
            instance=self.instance,
            resources={
                "duckdb": self.duckdb,
                "tenants": TenantsResource(tenants_file=str(self.tenants_file)),
            },
            run_config={"ops": {"extract": {"config": tuning}}},
            tags={FULL_EXTRACT_TAG: "true"} if full else None,
            selection=selection,
            raise_on_error=False,
        )

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        with self.duckdb.get_connection() as conn:
            return conn.execute(sql, params or []).fetchall()

    def table(self, name: str) -> list[tuple]:
        return self.rows(f"SELECT * FROM {name} ORDER BY ALL")

    def metadata(self, result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
        return {
            ev.asset_key.to_user_string(): {
                k: v.value for k, v in ev.materialization.metadata.items()
            }
            for ev in result.get_asset_materialization_events()
        }


@pytest.fixture
def harness(tmp_path, tripletex_sandbox, svenn_sandbox):
    h = Harness(tmp_path, tripletex_sandbox, svenn_sandbox)
    try:
        yield h
    finally:
        tripletex_sandbox.clear_faults()
        svenn_sandbox.clear_faults()
        h.instance.dispose()


def api_state(h: Harness) -> dict[str, dict[int, dict[str, Any]]]:
    """Both systems as their APIs list them, independently of the extract."""
    tx = h.tx_client()
    sv = h.svenn_client()
    try:
        customers = tx.list_all("/customer", {"isInactive": False}, CUSTOMER_FIELDS) + tx.list_all(
            "/customer", {"isInactive": True}, CUSTOMER_FIELDS
        )
        state = {
            "tripletex_employees": tx.list_all("/employee", None, EMPLOYEE_FIELDS),
            "tripletex_customers": customers,
            "tripletex_projects": tx.list_all("/project", None, PROJECT_FIELDS),
            **{
                f"svenn_{r}": sv.list_all(r, include_deleted=True)
                for r in ("employees", "customers", "projects")
            },
        }
    finally:
        tx.close()
        sv.close()
    return {name: {r["id"]: r for r in records} for name, records in state.items()}


def staging_rows(h: Harness, table: str) -> dict[int, dict[str, Any]]:
    with h.duckdb.get_connection() as conn:
        cur = conn.execute(f"SELECT * FROM staging.{table} WHERE tenant = ?", [TENANT])
        names = [d[0] for d in cur.description]
        records = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {r["id"]: r for r in records}


def test_extract_of_the_demo_world_equals_the_sandbox_state(harness):
    result = harness.run()
    assert result.success
    api = api_state(harness)
    for table, records in api.items():
        got = staging_rows(harness, table)
        assert set(got) == set(records), table
        assert len(got) > 0, table

    tx_projects = staging_rows(harness, "tripletex_projects")
    for pid, rec in api["tripletex_projects"].items():
        row = tx_projects[pid]
        assert row["number"] == ((rec.get("number") or "").strip() or None)
        assert row["name"] == rec["name"] and row["version"] == rec["version"]
        assert row["status"] == ("completed" if rec["isClosed"] else "active")
        assert row["member_ids"] == sorted({p["employee"]["id"] for p in rec["participants"]})
        assert row["parent_id"] == ((rec.get("mainProject") or {}).get("id") or None)
        assert row["is_internal"] == bool(rec.get("isInternal"))
        assert row["customer_id"] == ((rec.get("customer") or {}).get("id") or None)
        assert row["modified_at"] is not None
    tx_customers = staging_rows(harness, "tripletex_customers")
    for cid, rec in api["tripletex_customers"].items():
        assert tx_customers[cid]["number"] == str(rec["customerNumber"])
        assert tx_customers[cid]["is_active"] is (not rec["isInactive"])
        assert tx_customers[cid]["email"] == (rec.get("email") or None)
    tx_employees = staging_rows(harness, "tripletex_employees")
    for eid, rec in api["tripletex_employees"].items():
        assert tx_employees[eid]["last_name"] == (rec.get("lastName") or None)
        assert tx_employees[eid]["is_active"] is True
    sv_projects = staging_rows(harness, "svenn_projects")
    for pid, rec in api["svenn_projects"].items():
        row = sv_projects[pid]
        assert row["number"] == ((rec.get("display_id") or "").strip() or None)
        assert row["status"] == rec["status"] and row["deleted"] is bool(rec.get("deleted_at"))
        assert row["member_ids"] == sorted(set(rec.get("member_ids") or []))
        assert row["parent_id"] == rec.get("parent_id")
    sv_customers = staging_rows(harness, "svenn_customers")
    for cid, rec in api["svenn_customers"].items():
        assert sv_customers[cid]["is_active"] is rec["is_active"]
        assert sv_customers[cid]["name"] == rec["name"]

    modes = harness.rows("SELECT DISTINCT mode, complete FROM sync.extracts")
    assert modes == [("full", True)]
    meta = harness.metadata(result)
    assert len(meta) == 12
    for key, m in meta.items():
        assert m["complete"] is True and m["mode"] == "full", key
        assert m["dagster/row_count"] > 0 and m["requests"] >= 1 and "duration_s" in m
        assert m["preview"].startswith("| "), key


def test_C7_G7_inactive_customers_and_tombstones_are_extracted(harness):
    assert harness.run().success
    api = api_state(harness)
    inactive_api = {i for i, r in api["tripletex_customers"].items() if r["isInactive"]}
    (inactive,) = harness.rows(
        "SELECT list(id ORDER BY id) FROM staging.tripletex_customers WHERE NOT is_active"
    )[0]
    assert inactive_api and sorted(inactive_api) == inactive
    for resource in ("employees", "customers", "projects"):
        tombstones = sorted(i for i, r in api[f"svenn_{resource}"].items() if r.get("deleted_at"))
        (deleted,) = harness.rows(
            f"SELECT list(id ORDER BY id) FROM staging.svenn_{resource} WHERE deleted"
        )[0]
        assert tombstones and deleted == tombstones, resource


def _fault_after_first_page(monkeypatch, sandbox: SandboxProcess, path: str, **fault: Any):
    """Inject ``fault`` right after the first listing page of ``path`` was answered."""
    original = TripletexClient.get_page_conditional
    state = {"armed": True}

    def hooked(self, list_path, params=None, fields=None, if_none_match=None):
        page = original(self, list_path, params, fields, if_none_match)
        if state["armed"] and list_path == path:
            state["armed"] = False
            sandbox.add_fault(f"^/v2{path}$", method="GET", **fault)
        return page

    monkeypatch.setattr(TripletexClient, "get_page_conditional", hooked)


def test_G5_a_503_mid_paging_is_retried_and_the_extract_is_complete(harness, monkeypatch):
    _fault_after_first_page(monkeypatch, harness.tripletex, "/customer", status=503, count=2)
    result = harness.run(("tripletex",), config={"page_size": 20})
    assert result.success
    meta = harness.metadata(result)["staging/tripletex_customers"]
    pages = meta["pages_fetched"]
    assert pages >= 3 and meta["requests"] == pages + 2  # two retried attempts
    api = api_state(harness)
    assert set(staging_rows(harness, "tripletex_customers")) == set(api["tripletex_customers"])
    assert harness.rows(
        "SELECT complete FROM sync.extracts WHERE system = 'tripletex' AND entity = 'customer'"
    ) == [(True,)]


def test_G7_a_persistent_failure_fails_the_asset_and_keeps_the_last_snapshot(harness, monkeypatch):
    assert harness.run(("tripletex",), config={"page_size": 20}).success
    before = {
        t: harness.table(t) for t in ("raw.tripletex_customers", "staging.tripletex_customers")
    }
    # A change the failed extract must not half-apply: one customer disappears.
    tx = harness.tx_client()
    victim = next(
        c["id"]
        for c in tx.list_all("/customer", {"isInactive": False}, "id")
        if not tx.list_all("/project", {"customerId": c["id"]}, "id")
    )
    tx.delete(f"/customer/{victim}")
    tx.close()
    _fault_after_first_page(monkeypatch, harness.tripletex, "/customer", status=503, count=100)
    result = harness.run(("tripletex",), config={"page_size": 20}, full=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "customers extract incomplete" in message and "503" in message
    after = {t: harness.table(t) for t in before}
    assert after == before
    assert harness.rows(
        "SELECT complete, error IS NOT NULL FROM sync.extracts "
        "WHERE entity = 'customer' ORDER BY finished_at"
    ) == [(True, False), (False, True)]
    # the employees before it were extracted; the projects after it were not attempted
    assert harness.rows(
        "SELECT entity FROM sync.extracts WHERE complete AND mode = 'full' ORDER BY ALL"
    ) == [("customer",), ("employee",), ("employee",), ("project",)]


@pytest.fixture(scope="module")
def limited_tripletex():
    with SandboxProcess.start("tripletex", "--seed", "empty", "--rate-limit", "10/1") as sandbox:
        yield sandbox


def test_G5_a_429_storm_slows_the_run_but_loses_nothing(
    tmp_path, limited_tripletex, svenn_sandbox, monkeypatch
):
    h = Harness(tmp_path, limited_tripletex, svenn_sandbox)
    _fault_after_first_page(monkeypatch, limited_tripletex, "/customer", status=429, count=3)
    try:
        result = h.run(("tripletex",), config={"page_size": 25, "max_retries": 5})
        assert result.success
        meta = h.metadata(result)["raw/tripletex_customers"]
        assert meta["requests"] == meta["pages_fetched"] + 3  # each refusal retried
        assert meta["duration_s"] >= 3  # Retry-After: 1 s, three times
        api = api_state(h)
        for table in ("tripletex_employees", "tripletex_customers", "tripletex_projects"):
            assert set(staging_rows(h, table)) == set(api[table]), table
        stats = limited_tripletex.stats(h.employee_token)["requests"]
        assert stats["GET /v2/customer"] == meta["requests"] + 2  # + the test's own listing
    finally:
        limited_tripletex.clear_faults()
        h.instance.dispose()


def test_tokens_never_appear_in_logs_metadata_or_exceptions(harness, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    ok = harness.run()
    assert ok.success
    harness.svenn.add_fault("^/api/v1/customers$", status=503, count=100)
    harness.tripletex.add_fault("^/v2/project$", status=500, count=100)
    failed = harness.run(full=True)
    assert not failed.success
    sessions: list[str] = []
    original = TripletexClient._create_session

    def capture(self):
        original(self)
        sessions.append(self._session_token)

    monkeypatch.setattr(TripletexClient, "_create_session", capture)
    harness.tripletex.clear_faults()
    harness.svenn.clear_faults()
    harness.tripletex.add_fault("^/v2/employee$", status=401, count=100)
    unauthorized = harness.run(("tripletex",))
    assert not unauthorized.success and sessions

    texts = [caplog.text]
    for result in (ok, failed, unauthorized):
        for record in harness.instance.all_logs(result.run_id):
            texts.append(repr(record))
            if record.dagster_event is not None:
                texts.append(json.dumps(dg.serialize_value(record.dagster_event)))
    texts.extend(str(r) for r in harness.rows("SELECT * FROM sync.extracts"))
    blob = "\n".join(texts)
    assert "extract incomplete" in blob  # the failures were captured at all
    for secret in (*harness.secrets, *sessions):
        assert secret not in blob


def test_svenn_incremental_extract_picks_up_a_change_with_few_requests(harness, monkeypatch):
    assert harness.run(("svenn",)).success
    (watermark,) = harness.rows(
        "SELECT watermark->>'max_updated_at' FROM sync.extracts WHERE entity = 'customer'"
    )[0]
    asked: dict[str, Any] = {}
    original = SvennClient.iter_pages

    def spy(self, resource, updated_since=None, include_deleted=False):
        asked[resource] = (updated_since, include_deleted)
        return original(self, resource, updated_since, include_deleted)

    monkeypatch.setattr(SvennClient, "iter_pages", spy)
    sv = harness.svenn_client()
    customer = next(c for c in sv.list_all("customers") if not c.get("deleted_at"))
    sv.update("customers", customer["id"], {"name": "Endret Navn AS"})
    employee = next(e for e in sv.list_all("employees") if not e.get("deleted_at"))
    sv.delete("employees", employee["id"])
    sv.close()

    result = harness.run(("svenn",))
    assert result.success
    meta = harness.metadata(result)
    for resource in ("employees", "customers", "projects"):
        assert meta[f"staging/svenn_{resource}"]["mode"] == "incremental"
        assert meta[f"staging/svenn_{resource}"]["requests"] == 1
    assert staging_rows(harness, "svenn_customers")[customer["id"]]["name"] == "Endret Navn AS"
    assert staging_rows(harness, "svenn_employees")[employee["id"]]["deleted"] is True
    since, include_deleted = asked["customers"]
    assert include_deleted is True
    assert (
        since == datetime.fromisoformat(watermark.replace("Z", "+00:00")) - SVENN_WATERMARK_OVERLAP
    )
    api = api_state(harness)
    for resource in ("employees", "customers", "projects"):
        assert set(staging_rows(harness, f"svenn_{resource}")) == set(api[f"svenn_{resource}"])

    asked.clear()
    forced = harness.run(("svenn",), full=True)
    assert forced.success
    assert {m["mode"] for m in harness.metadata(forced).values()} == {"full"}
    assert asked["customers"] == (None, True)


def test_unchanged_tripletex_listing_comes_back_304_and_keeps_the_snapshot(harness):
    config = {"page_size": 20}
    assert harness.run(("tripletex",), config=config).success
    snapshot = harness.table("staging.tripletex_customers")

    second = harness.run(("tripletex",), config=config)
    assert second.success
    for entity, m in ((k, v) for k, v in harness.metadata(second).items() if k.startswith("raw")):
        assert m["mode"] == "incremental" and m["pages_fetched"] == 0, entity
        assert m["pages_not_modified"] >= 1 and m["records_fetched"] == 0, entity
    assert harness.table("staging.tripletex_customers") == snapshot

    # a change and a deletion: the changed listing is re-read, the others stay 304
    tx = harness.tx_client()
    active = tx.list_all("/customer", {"isInactive": False}, "id,version")
    renamed = active[-1]
    tx.put(f"/customer/{renamed['id']}", {"version": renamed["version"], "name": "Nytt Navn AS"})
    deletable = next(
        c["id"] for c in active[:20] if not tx.list_all("/project", {"customerId": c["id"]}, "id")
    )
    tx.delete(f"/customer/{deletable}")
    tx.close()
    third = harness.run(("tripletex",), config=config)
    assert third.success
    meta = harness.metadata(third)
    assert meta["raw/tripletex_customers"]["pages_fetched"] >= 1
    assert meta["raw/tripletex_employees"]["pages_fetched"] == 0
    assert meta["raw/tripletex_projects"]["pages_fetched"] == 0
    rows = staging_rows(harness, "tripletex_customers")
    assert rows[renamed["id"]]["name"] == "Nytt Navn AS" and deletable not in rows
    assert set(rows) == set(api_state(harness)["tripletex_customers"])

    forced = harness.run(("tripletex",), config=config, full=True)
    assert forced.success
    assert {m["mode"] for m in harness.metadata(forced).values()} == {"full"}
    assert set(staging_rows(harness, "tripletex_customers")) == set(rows)


def test_one_entity_can_be_extracted_alone(harness):
    key = dg.AssetKey(["staging", "tripletex_projects"])
    result = harness.run(("tripletex",), selection=[key])
    assert result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [key]
    assert harness.rows("SELECT DISTINCT entity FROM sync.extracts") == [("project",)]
    assert TripletexClient.listing("project").fields == PROJECT_FIELDS


def test_an_unknown_tenant_fails_with_the_tenants_file_message(tmp_path):
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text(
        "tenants:\n  other:\n    mode: active\n"
        '    svenn: {base_url: "http://127.0.0.1:9/api/v1", api_key: "k-secret"}\n'
        '    tripletex: {base_url: "http://127.0.0.1:9/v2", consumer_token: "c-secret", '
        'employee_token: "e-secret"}\n',
        encoding="utf-8",
    )
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenants", [TENANT])
        result = dg.materialize(
            [extract],
            selection=[raw_key("svenn", e) for e in ENTITIES],
            partition_key=TENANT,
            instance=instance,
            resources={
                "duckdb": SyncDuckDB(database=str(tmp_path / "pipeline.duckdb")),
                "tenants": TenantsResource(tenants_file=str(tenants_file)),
            },
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert f"unknown tenant '{TENANT}'" in message and "secret" not in message


def test_P10_the_integration_user_is_landed_once_and_refreshed_by_full_extracts(harness):
    me = harness.tx_client().who_am_i()
    employees = [dg.AssetKey(["staging", "tripletex_employees"])]

    def extract(full: bool = False) -> None:
        assert harness.run(("tripletex",), selection=employees, full=full).success

    context = "SELECT tripletex_employee_id, fetched_at FROM sync.tenant_context"
    extract()
    ((employee_id, first_fetch),) = harness.rows(context)
    assert employee_id == me["employeeId"]
    tx = harness.tx_client()
    assignable = tx.list_all("/employee", {"assignableProjectManagers": True}, "id")
    everyone = tx.list_all("/employee", None, "id")
    tx.close()
    landed = harness.rows(
        "SELECT list(employee_id ORDER BY employee_id) FROM staging.tripletex_project_managers"
    )
    assert 0 < len(assignable) < len(everyone)  # the demo world has employees without access
    assert landed == [(sorted(e["id"] for e in assignable),)]
    extract()
    assert harness.rows(context) == [(employee_id, first_fetch)]  # incremental: not asked again
    extract(full=True)
    ((_, refreshed),) = harness.rows(context)
    assert refreshed > first_fetch


def test_requests_metadata_counts_every_tripletex_request_of_the_extract(harness):
    """The figures operators and the benchmark read: session, pages and the P10 ``>whoAmI``."""
    result = harness.run(("tripletex",), config={"page_size": 20}, full=True)
    assert result.success
    meta = harness.metadata(result)
    reported = sum(m["requests"] for key, m in meta.items() if key.startswith("raw/"))
    served = harness.tripletex.stats(harness.employee_token)["requests"]
    assert served.get("GET /v2/token/session/>whoAmI") == 1
    # + the session's creation, which the sandbox counts before it knows the company
    assert reported == sum(served.values()) + 1
    (recorded,) = harness.rows("SELECT sum(requests) FROM sync.extracts")[0]
    assert recorded == reported
