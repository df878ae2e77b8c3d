"""DuckDB storage: the schema of every table, versioned migrations, and the resource.

Schemas: ``raw`` (API records as extracted), ``staging`` (the canonical model of
SYNC-RULES §0), ``sync`` (links, plan, findings, conflicts, the write-ahead
operations log, the error log and the runs). Every table carries ``tenant``.

Migrations are append-only and literal SQL: never edit a shipped one (nor generate one from
code that may change, such as ``model.py``), add the next version.
They run automatically, in one transaction each, whenever a connection is
opened, and are idempotent (``sync.schema_migrations``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource

from sync_pipeline.resources.state import transaction

DEFAULT_DUCKDB_PATH = "data/sync_pipeline.duckdb"


def duckdb_path() -> str:
    """``SYNC_DUCKDB_PATH`` or the default; not ``sync.duckdb``, whose catalog would clash with
    the ``sync`` schema."""
    return os.environ.get("SYNC_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)


MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "schemas, staging tables and sync state",
        """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS sync;
-- The canonical model of SYNC-RULES §0 (model.py's staging columns as shipped; later
-- columns come from later migrations, e.g. is_offer from 13).
CREATE TABLE IF NOT EXISTS staging.svenn_employees (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  first_name VARCHAR,
  last_name VARCHAR,
  email VARCHAR,
  phone VARCHAR,
  is_active BOOLEAN,
  user_type VARCHAR,
  department_id BIGINT
);
CREATE TABLE IF NOT EXISTS staging.svenn_customers (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  name VARCHAR,
  email VARCHAR,
  phone VARCHAR,
  organization_number VARCHAR,
  is_active BOOLEAN
);
CREATE TABLE IF NOT EXISTS staging.svenn_projects (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  name VARCHAR,
  start_date DATE,
  end_date DATE,
  status VARCHAR,
  customer_id BIGINT,
  project_manager_id BIGINT,
  member_ids BIGINT[],
  parent_id BIGINT,
  is_internal BOOLEAN
);
CREATE TABLE IF NOT EXISTS staging.tripletex_employees (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  first_name VARCHAR,
  last_name VARCHAR,
  email VARCHAR,
  phone VARCHAR,
  is_active BOOLEAN,
  user_type VARCHAR,
  department_id BIGINT
);
CREATE TABLE IF NOT EXISTS staging.tripletex_customers (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  name VARCHAR,
  email VARCHAR,
  phone VARCHAR,
  organization_number VARCHAR,
  is_active BOOLEAN
);
CREATE TABLE IF NOT EXISTS staging.tripletex_projects (
  tenant VARCHAR NOT NULL,
  id BIGINT NOT NULL,
  version BIGINT,
  modified_at TIMESTAMPTZ,
  deleted BOOLEAN NOT NULL,
  label VARCHAR,
  number VARCHAR,
  name VARCHAR,
  start_date DATE,
  end_date DATE,
  status VARCHAR,
  customer_id BIGINT,
  project_manager_id BIGINT,
  member_ids BIGINT[],
  parent_id BIGINT,
  is_internal BOOLEAN
);

-- One row per extract of one entity from one system (G7: deletions only from complete ones).
CREATE TABLE IF NOT EXISTS sync.extracts (
  tenant VARCHAR NOT NULL, system VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  run_id VARCHAR, mode VARCHAR NOT NULL,          -- 'full' | 'incremental'
  complete BOOLEAN NOT NULL, row_count BIGINT, requests BIGINT,
  started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,
  watermark VARCHAR,                              -- Svenn updated_since / Tripletex digests (JSON)
  error VARCHAR
);

-- The pairs the sync maintains (SYNC-RULES §0 "link"); only the apply step writes it.
CREATE TABLE IF NOT EXISTS sync.links (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  svenn_id BIGINT, tripletex_id BIGINT, key VARCHAR,
  origin VARCHAR NOT NULL,                        -- 'svenn' | 'tripletex' | 'matched'
  state VARCHAR NOT NULL,                         -- 'active' | 'detached'
  base JSON,                                      -- canonical values both sides agreed on (G2, G6)
  tripletex_version BIGINT, svenn_version BIGINT,
  linked_at TIMESTAMPTZ NOT NULL, last_synced_at TIMESTAMPTZ
);

-- One row per operation of a run's plan, dependencies first (seq).
CREATE TABLE IF NOT EXISTS sync.plan (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
  entity VARCHAR NOT NULL,
  target VARCHAR NOT NULL,                        -- 'svenn' | 'tripletex' | 'state'
  operation VARCHAR NOT NULL,                     -- create|update|link|detach|complete|delete|set_number
  svenn_id BIGINT, tripletex_id BIGINT, key VARCHAR, label VARCHAR,
  payload JSON,                                   -- the exact body to send
  fields VARCHAR[], rule_ids VARCHAR[], reason VARCHAR,
  expected_version BIGINT,                        -- Tripletex version / Svenn If-Match
  base_after JSON,                                -- the link's base once applied
  apply BOOLEAN NOT NULL,                         -- false in review mode (G9) or held (G7)
  held_reason VARCHAR,
  planned_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS sync.conflicts (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  svenn_id BIGINT, tripletex_id BIGINT, field VARCHAR NOT NULL,
  base_value JSON, svenn_value JSON, tripletex_value JSON, winner VARCHAR NOT NULL,
  svenn_modified_at TIMESTAMPTZ, tripletex_modified_at TIMESTAMPTZ,
  detected_at TIMESTAMPTZ NOT NULL
);

-- Why a record is not (fully) synced in this run: rules and API rejections alike.
CREATE TABLE IF NOT EXISTS sync.findings (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, entity VARCHAR,
  side VARCHAR, svenn_id BIGINT, tripletex_id BIGINT, record_label VARCHAR,
  code VARCHAR NOT NULL, severity VARCHAR NOT NULL, rule_id VARCHAR,
  message VARCHAR NOT NULL, details JSON
);

-- Write-ahead log: intent before the call, outcome after (G5).
CREATE TABLE IF NOT EXISTS sync.operations (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
  entity VARCHAR NOT NULL, target VARCHAR NOT NULL, operation VARCHAR NOT NULL,
  svenn_id BIGINT, tripletex_id BIGINT, key VARCHAR, idempotency_key VARCHAR,
  state VARCHAR NOT NULL,                         -- 'intent' | 'done' | 'failed' | 'skipped'
  result_id BIGINT, error JSON,
  started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ
);

-- The error log analysts query (G10): one open row per (tenant, code, entity, record).
CREATE TABLE IF NOT EXISTS sync.errors (
  tenant VARCHAR NOT NULL, code VARCHAR NOT NULL, severity VARCHAR NOT NULL,
  entity VARCHAR, svenn_id BIGINT, tripletex_id BIGINT, record_label VARCHAR,
  message VARCHAR NOT NULL, details JSON,
  first_seen_at TIMESTAMPTZ NOT NULL, last_seen_at TIMESTAMPTZ NOT NULL,
  resolved_at TIMESTAMPTZ, run_id VARCHAR
);

CREATE TABLE IF NOT EXISTS sync.runs (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
  mode VARCHAR, full_extract BOOLEAN,
  started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,
  outcome VARCHAR,                                -- 'success' | 'partial' | 'failed' | 'review'
  counts JSON, errors_opened INTEGER, errors_resolved INTEGER,
  requests JSON, duration_s DOUBLE, reason VARCHAR
);

-- Operator decisions: go-live of a review tenant (G9), release of held deletions (G7).
CREATE TABLE IF NOT EXISTS sync.approvals (
  tenant VARCHAR NOT NULL, action VARCHAR NOT NULL, actor VARCHAR NOT NULL,
  approved_at TIMESTAMPTZ NOT NULL, consumed_by_run VARCHAR
);
""",
    ),
    (
        2,
        "raw tables: the API records as extracted",
        """
-- One table per system and entity: the API's fields as columns (references as <field>_id),
-- the whole record as raw_json, and when it was fetched. Tripletex rows also keep the
-- listing and page they came from, so a page answered 304 is kept as it is.
CREATE TABLE IF NOT EXISTS raw.svenn_employees (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, id BIGINT, version BIGINT,
  employee_number VARCHAR, first_name VARCHAR, last_name VARCHAR, email VARCHAR,
  phone VARCHAR, is_active BOOLEAN, created_at VARCHAR, updated_at VARCHAR,
  deleted_at VARCHAR, raw_json JSON
);
CREATE TABLE IF NOT EXISTS raw.svenn_customers (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, id BIGINT, version BIGINT,
  customer_number VARCHAR, name VARCHAR, email VARCHAR, phone VARCHAR,
  organization_number VARCHAR, is_active BOOLEAN, created_at VARCHAR, updated_at VARCHAR,
  deleted_at VARCHAR, raw_json JSON
);
CREATE TABLE IF NOT EXISTS raw.svenn_projects (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, id BIGINT, version BIGINT,
  display_id VARCHAR, name VARCHAR, description VARCHAR, start_date VARCHAR, end_date VARCHAR,
  status VARCHAR, parent_id BIGINT, customer_id BIGINT, project_manager_id BIGINT,
  member_ids BIGINT[], created_at VARCHAR, updated_at VARCHAR, deleted_at VARCHAR,
  raw_json JSON
);
CREATE TABLE IF NOT EXISTS raw.tripletex_employees (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, listing VARCHAR NOT NULL,
  page INTEGER NOT NULL, id BIGINT, version BIGINT, employeeNumber VARCHAR, firstName VARCHAR,
  lastName VARCHAR, email VARCHAR, phoneNumberMobile VARCHAR, userType VARCHAR,
  department_id BIGINT, changes JSON, raw_json JSON
);
CREATE TABLE IF NOT EXISTS raw.tripletex_customers (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, listing VARCHAR NOT NULL,
  page INTEGER NOT NULL, id BIGINT, version BIGINT, customerNumber BIGINT, name VARCHAR,
  email VARCHAR, invoiceEmail VARCHAR, phoneNumber VARCHAR, organizationNumber VARCHAR,
  isInactive BOOLEAN, changes JSON, raw_json JSON
);
CREATE TABLE IF NOT EXISTS raw.tripletex_projects (
  tenant VARCHAR NOT NULL, extracted_at TIMESTAMPTZ NOT NULL, listing VARCHAR NOT NULL,
  page INTEGER NOT NULL, id BIGINT, version BIGINT, number VARCHAR, name VARCHAR,
  startDate VARCHAR, endDate VARCHAR, isClosed BOOLEAN, isInternal BOOLEAN,
  mainProject_id BIGINT, customer_id BIGINT, projectManager_id BIGINT,
  participant_employee_ids BIGINT[], changes JSON, raw_json JSON
);
""",
    ),
    (
        3,
        "rules: intermediate tables of the rule engine",
        """
-- The rule engine's working tables (group rules); each asset replaces its tenant's rows.
CREATE SCHEMA IF NOT EXISTS rules;
-- Per staged record: why it is not synced at all (excluded) or not created elsewhere.
CREATE TABLE IF NOT EXISTS rules.eligibility (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, side VARCHAR NOT NULL, id BIGINT NOT NULL,
  key VARCHAR, label VARCHAR, linked BOOLEAN NOT NULL,
  excluded VARCHAR,                               -- finding code: not linked, merged or created
  create_blocked VARCHAR                          -- finding code: matched/linked but not created
);
-- The fate of every record pair: already linked, matched now (G3), or to be created (G4).
CREATE TABLE IF NOT EXISTS rules.pairs (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  key VARCHAR, kind VARCHAR NOT NULL,             -- linked|matched|create_in_svenn|create_in_tripletex
  origin VARCHAR, via VARCHAR                     -- link origin; matched by 'key' | 'email'
);
-- Numbers the sync generates for records that lack one (P5, E2).
CREATE TABLE IF NOT EXISTS rules.numbers (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, side VARCHAR NOT NULL, id BIGINT NOT NULL,
  number VARCHAR NOT NULL
);
-- Per linked or matched pair and field: the values and what the merge decided (G2, G3).
CREATE TABLE IF NOT EXISTS rules.decisions (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  field VARCHAR NOT NULL, base_value VARCHAR, svenn_value VARCHAR, tripletex_value VARCHAR,
  merged VARCHAR, write_to VARCHAR, blocked_by VARCHAR, conflict_winner VARCHAR
);
-- Links whose record is gone on one side (P8, P9, C6, C7), with the G7 guard's verdict.
CREATE TABLE IF NOT EXISTS rules.deletions (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  deleted_on VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, held BOOLEAN NOT NULL
);
-- Operations proposed by each step; the plan asset orders them into sync.plan.
CREATE TABLE IF NOT EXISTS rules.operations (
  tenant VARCHAR NOT NULL, step VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  target VARCHAR NOT NULL, operation VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  key VARCHAR, label VARCHAR, payload JSON, fields VARCHAR[], rule_ids VARCHAR[],
  reason VARCHAR, expected_version BIGINT, base_after JSON, held_reason VARCHAR
);
-- Findings proposed by each step; the plan asset adds severity, rule and message.
CREATE TABLE IF NOT EXISTS rules.findings (
  tenant VARCHAR NOT NULL, step VARCHAR NOT NULL, entity VARCHAR, side VARCHAR,
  svenn_id BIGINT, tripletex_id BIGINT, record_label VARCHAR, code VARCHAR NOT NULL,
  details JSON
);
CREATE TABLE IF NOT EXISTS rules.conflicts (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  field VARCHAR NOT NULL, base_value JSON, svenn_value JSON, tripletex_value JSON,
  winner VARCHAR NOT NULL, svenn_modified_at TIMESTAMPTZ, tripletex_modified_at TIMESTAMPTZ
);
""",
    ),
    (
        4,
        "apply: the body each operation sent, and what was last published to Svenn",
        """
-- The exact body of each write (after $ref resolution), for audit and crash recovery.
ALTER TABLE sync.operations ADD COLUMN IF NOT EXISTS payload JSON;
-- One row per publication of a tenant's open errors to Svenn (G10); the newest hash
-- decides whether the list changed since (G6: no republishing of an unchanged list).
CREATE TABLE IF NOT EXISTS sync.error_publications (
  tenant VARCHAR NOT NULL, run_id VARCHAR, errors_hash VARCHAR NOT NULL,
  error_count INTEGER NOT NULL, published_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        5,
        "the Tripletex user the integration logs in as",
        """
-- P10: the default project manager is the token owner (>whoAmI), landed by the extract.
CREATE TABLE IF NOT EXISTS sync.tenant_context (
  tenant VARCHAR PRIMARY KEY, tripletex_employee_id BIGINT, tripletex_company_id BIGINT,
  fetched_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        6,
        "the Tripletex employees who may manage projects",
        """
-- P10: GET /employee?assignableProjectManagers=true, landed with the token owner.
CREATE TABLE IF NOT EXISTS staging.tripletex_project_managers (
  tenant VARCHAR NOT NULL, employee_id BIGINT NOT NULL
);
""",
    ),
    (
        7,
        "why each link was detached",
        """
-- G13: one row per link detached (the rule that detached it and why), written in the
-- transaction that detaches it; every run re-raises LINK_DETACHED from it while the link
-- stays detached, so the warning resolves only when an operator re-attaches the link.
CREATE TABLE IF NOT EXISTS sync.link_detachments (
  tenant VARCHAR NOT NULL, entity VARCHAR NOT NULL, svenn_id BIGINT, tripletex_id BIGINT,
  rule_id VARCHAR, reason VARCHAR, run_id VARCHAR, detached_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        8,
        "the Svenn and Tripletex company each tenant is bound to",
        """
-- G11: one row per binding of a tenant to one Svenn and one Tripletex company; the row
-- with replaced_at NULL is the tenant's current binding (earlier ones are its history).
-- A company is bound to at most one tenant: enforced by the write (no partial indexes).
CREATE TABLE IF NOT EXISTS sync.tenant_bindings (
  tenant VARCHAR NOT NULL, svenn_company_id BIGINT NOT NULL,
  tripletex_company_id BIGINT NOT NULL,
  bound_at TIMESTAMPTZ NOT NULL, bound_by VARCHAR NOT NULL,
  how VARCHAR NOT NULL,                           -- 'first_run' | 'approve' | 'rebind'
  replaced_at TIMESTAMPTZ
);
""",
    ),
    (
        9,
        "one run per tenant: the tenant lease (G13)",
        """
-- G13: the run that may sync a tenant now. Taken by the first step of a run with a guarded
-- write (free, released, expired or held by a dead run), renewed while the run works,
-- released at its end; a run killed outright loses it when expires_at passes.
CREATE TABLE IF NOT EXISTS sync.leases (
  tenant VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL,
  holder VARCHAR NOT NULL,                        -- host:pid of the process running the run
  acquired_at TIMESTAMPTZ NOT NULL, renewed_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL, released_at TIMESTAMPTZ
);
""",
    ),
    (
        12,
        "the design card's frames per run: every failing eligibility check, every matched pair",
        """
-- One row per failing eligibility check of a live staged record in a run (every check, not
-- only the first): P1, P2, P3, P6, C1, C2, E1, E3, G3 DUPLICATE_KEY. Written by the
-- eligibility rule; the newest runs of each tenant are kept (see FRAME_RUNS_KEPT).
CREATE TABLE IF NOT EXISTS sync.eligibility_checks (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  side VARCHAR NOT NULL, id BIGINT NOT NULL, key VARCHAR, label VARCHAR,
  linked BOOLEAN NOT NULL,
  rule_id VARCHAR NOT NULL, code VARCHAR NOT NULL,
  effect VARCHAR NOT NULL,                        -- 'excluded' | 'create_blocked'
  checked_at TIMESTAMPTZ NOT NULL
);
-- One row per pair of a run's matched frame: active links and new matches (G3).
CREATE TABLE IF NOT EXISTS sync.matches (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  svenn_id BIGINT, tripletex_id BIGINT, key VARCHAR,
  via VARCHAR NOT NULL,                           -- 'linked' | 'key' | 'email'
  kind VARCHAR NOT NULL,                          -- 'linked' | 'matched' | 'matched_deleted'
  origin VARCHAR, matched_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        13,
        "P13: Tripletex offers are read, so they are recognised instead of looking deleted",
        """
-- isOffer of each Tripletex project (P13): offers are not projects; reading the flag (not
-- filtering offers out of the listing) keeps a linked project that becomes an offer from
-- looking deleted (P9), and lets an offer converted to a project sync from then on.
ALTER TABLE raw.tripletex_projects ADD COLUMN IF NOT EXISTS isOffer BOOLEAN;
ALTER TABLE staging.tripletex_projects ADD COLUMN IF NOT EXISTS is_offer BOOLEAN;
ALTER TABLE staging.svenn_projects ADD COLUMN IF NOT EXISTS is_offer BOOLEAN;
""",
    ),
    (
        14,
        "G9: the plan step's review decision, recorded with the plan",
        """
-- One row per run's plan: whether the rules decided review mode (G9: a review tenant
-- without an operator's go-live only plans). Written with sync.plan in one transaction;
-- the apply step reads it instead of deciding again, so sync.plan and this row are the
-- whole contract between the rules and apply (an empty plan is still a decision).
CREATE TABLE IF NOT EXISTS sync.plan_runs (
  tenant VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
  review BOOLEAN NOT NULL,
  planned_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        15,
        "webhook events waiting for the run that covers them (issue 15)",
        """
-- One row per webhook delivery received (Tripletex or Svenn), moved here from the
-- receiver's spool by the webhooks sensor. No key constraints (the DuckLake backend cannot
-- take them): a delivery is inserted only where (tenant, source, delivery_id) is absent.
-- batch = the run key of the sensor's run covering it; consumed_at = that run succeeded.
CREATE TABLE IF NOT EXISTS sync.webhook_events (
  tenant VARCHAR NOT NULL, source VARCHAR NOT NULL, delivery_id VARCHAR NOT NULL,
  seq BIGINT NOT NULL,                            -- the spool's order of arrival
  event VARCHAR NOT NULL, entity VARCHAR NOT NULL,
  action VARCHAR NOT NULL,                        -- 'create' | 'update' | 'delete'
  record_id BIGINT NOT NULL, version BIGINT,
  received_at TIMESTAMPTZ NOT NULL, stored_at TIMESTAMPTZ NOT NULL,
  batch VARCHAR, batched_at TIMESTAMPTZ, consumed_at TIMESTAMPTZ
);
""",
    ),
]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied."""
    from sync_pipeline.resources.backends import run_ddl  # what a DuckLake cannot take

    run_ddl(
        conn,
        "CREATE SCHEMA IF NOT EXISTS sync;"
        "CREATE TABLE IF NOT EXISTS sync.schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())",
    )
    done = {row[0] for row in conn.execute("SELECT version FROM sync.schema_migrations").fetchall()}
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        with transaction(conn):
            run_ddl(conn, sql)
            conn.execute(
                "INSERT INTO sync.schema_migrations (version, name, applied_at) VALUES (?, ?, now())",
                [version, name],
            )
        applied.append(version)
    return applied


class SyncDuckDB(DuckDBResource):
    """dagster-duckdb's resource, with the project's migrations run on first connect.

    Connections are opened per unit of work and closed at once, so runs of other
    tenants get the file between steps (DuckDB allows one process to hold the file; any
    other process that opens it, even read-only, blocks the writers: analysts read the
    Parquet exports of ``assets/apply/exports.py`` instead). A long step holds the file
    open for its duration (``held_open``): opening the file and checkpointing it on the
    last close cost more than a small transaction, and the apply step of a large first
    sync commits hundreds of them. Many tenants at once belong on the DuckLake backend.
    """

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """Keep the file open in this process while the block runs, so the connections
        opened inside it are cheap (the process's open database is reused, no checkpoint
        on each close). Nothing to hold on the DuckLake backend."""
        from sync_pipeline.resources import backends

        if backends.store_kind() == "ducklake" or self.database == ":memory:":
            yield
            return
        with self.get_connection():
            yield

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from sync_pipeline.resources import backends

        if backends.store_kind() == "ducklake":  # SYNC_STORE: the lake, not this file
            with backends.open_lake() as conn:
                yield conn
            return
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            # Threads of one step (both systems' listings, the lease's renewal) share the
            # process's database instance; DuckDB's instance cache is not safe against a
            # connect racing another thread's connect or last close ("Unique file handle
            # conflict"), so both happen one at a time in this process.
            with _OPEN_CLOSE:
                conn = stack.enter_context(super().get_connection())
            # Closed here whichever way the block ends: dagster-duckdb closes only on
            # success, and an exception (e.g. the G13 refusal) must not leave the file open
            # in this process, held by the traceback.
            stack.callback(_close, conn)
            migrate(conn)  # two cheap queries when nothing is pending
            yield conn


#: Serialises opening and closing DuckDB connections within this process.
_OPEN_CLOSE = threading.Lock()


def _close(conn: duckdb.DuckDBPyConnection) -> None:
    with _OPEN_CLOSE:
        conn.close()
