"""G11: a tenant is bound to one Svenn company and one Tripletex company.

The ``sync/tenant_binding`` asset runs first in every sync and plan run, upstream of both
extracts: it asks each system which company the tenant's credentials belong to (Svenn
``GET /company``, Tripletex ``>whoAmI``; three cheap requests) and compares them with the
tenant's binding in ``sync.tenant_bindings``. The first run records the binding (so does
``sync-pipeline approve``). A key or token that now belongs to another company, or to a
company another tenant is bound to, fails the asset, so the run lands no extract, plans
nothing and writes nothing to either system; the refusal is an error
``TENANT_BINDING_CHANGED`` in ``sync.errors`` and the reason in ``sync.runs``. Only an
operator's ``sync-pipeline rebind`` moves a binding. A tenant bound before this check
existed is held to the Tripletex company its extracts recorded (``sync.tenant_context``).
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb

from sync_pipeline.assets.apply.error_log import Finding, insert_findings, merge_error_log
from sync_pipeline.assets.apply.exports import export_dir, export_parquet
from sync_pipeline.assets.apply.runs import upsert_run
from sync_pipeline.assets.lease import LEASE_KEY
from sync_pipeline.model import CODES
from sync_pipeline.partitions import FULL_EXTRACT_TAG, tenant_partitions
from sync_pipeline.resources.state import transaction
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantConfig, TenantsResource

BINDING_KEY = dg.AssetKey(["sync", "tenant_binding"])
CODE = "TENANT_BINDING_CHANGED"
_SYSTEM = {"svenn": "Svenn", "tripletex": "Tripletex"}
_CREDENTIAL = {"svenn": "API key", "tripletex": "token"}


@dataclass(frozen=True)
class CompanyIds:
    """The companies a tenant's credentials belong to right now."""

    svenn: int
    tripletex: int
    requests: dict[str, int]


@dataclass(frozen=True)
class BindingCheck:
    """The tenant's binding against the current companies; ``problems`` empty = may run."""

    tenant: str
    bound: dict[str, int | None]
    current: dict[str, int]
    taken_by: dict[str, str | None]

    @property
    def changed(self) -> list[str]:
        return [
            s for s in _SYSTEM if self.bound[s] is not None and self.bound[s] != self.current[s]
        ]

    @property
    def taken(self) -> list[str]:
        """The current companies another tenant is bound to."""
        return [
            f"{_SYSTEM[s]} company {self.current[s]} is bound to tenant '{self.taken_by[s]}'"
            for s in _SYSTEM
            if self.taken_by[s]
        ]

    @property
    def problems(self) -> list[str]:
        return [
            f"its {_SYSTEM[s]} {_CREDENTIAL[s]} now belongs to {_SYSTEM[s]} company "
            f"{self.current[s]}, but the tenant is bound to {_SYSTEM[s]} company {self.bound[s]}"
            for s in self.changed
        ] + self.taken

    def message(self) -> str:
        """One line for operators: the tenant, which id changed, and what to do."""
        return (
            f"tenant '{self.tenant}' refused (G11): {'; '.join(self.problems)}; nothing was "
            f"synced. Fix the tenants file, or if the tenant really moved: "
            f"sync-pipeline rebind --tenant {self.tenant}"
        )


def company_ids(config: TenantConfig, **client_overrides: Any) -> CompanyIds:
    """Ask both systems which company the tenant's credentials belong to."""
    svenn = config.svenn_client(**client_overrides)
    tripletex = config.tripletex_client(**client_overrides)
    try:
        svenn_id = int(svenn.get_company()["id"])
        tripletex_id = int(tripletex.who_am_i("companyId")["companyId"])
        return CompanyIds(
            svenn_id,
            tripletex_id,
            {"svenn": svenn.requests_made, "tripletex": tripletex.requests_made},
        )
    finally:
        svenn.close()
        tripletex.close()


def g11_binding_sql() -> str:
    """The tenant's binding (before bindings existed: the Tripletex company its extracts
    recorded) and the other tenant, if any, bound to each of the current companies."""
    return """
    WITH current_bindings AS (SELECT * FROM sync.tenant_bindings WHERE replaced_at IS NULL),
    mine AS (SELECT * FROM current_bindings WHERE tenant = $tenant)
    SELECT (SELECT svenn_company_id FROM mine),
           coalesce((SELECT tripletex_company_id FROM mine),
                    (SELECT tripletex_company_id FROM sync.tenant_context WHERE tenant = $tenant)),
           (SELECT min(tenant) FROM current_bindings
            WHERE tenant <> $tenant AND svenn_company_id = $svenn),
           (SELECT min(tenant) FROM current_bindings
            WHERE tenant <> $tenant AND tripletex_company_id = $tripletex),
           EXISTS (SELECT 1 FROM mine)
    """


def g11_bind_sql() -> str:
    """Record a binding; the write itself refuses a company another tenant is bound to."""
    return """
    INSERT INTO sync.tenant_bindings
      (tenant, svenn_company_id, tripletex_company_id, bound_at, bound_by, how, replaced_at)
    SELECT $tenant, $svenn, $tripletex, now(), $by, $how, NULL
    WHERE NOT EXISTS (
      SELECT 1 FROM sync.tenant_bindings WHERE replaced_at IS NULL AND tenant <> $tenant
        AND (svenn_company_id = $svenn OR tripletex_company_id = $tripletex))
    """


def check_binding(conn: duckdb.DuckDBPyConnection, tenant: str, ids: CompanyIds) -> BindingCheck:
    params = {"tenant": tenant, "svenn": ids.svenn, "tripletex": ids.tripletex}
    row = conn.execute(g11_binding_sql(), params).fetchone()
    return BindingCheck(
        tenant,
        bound={"svenn": row[0], "tripletex": row[1]},
        current={"svenn": ids.svenn, "tripletex": ids.tripletex},
        taken_by={"svenn": row[2], "tripletex": row[3]},
    )


def _has_row(conn: duckdb.DuckDBPyConnection, tenant: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM sync.tenant_bindings WHERE tenant = ? AND replaced_at IS NULL",
            [tenant],
        ).fetchone()[0]
    )


def _insert(conn, tenant: str, ids: CompanyIds, by: str, how: str) -> None:
    params = {"tenant": tenant, "svenn": ids.svenn, "tripletex": ids.tripletex}
    (inserted,) = conn.execute(g11_bind_sql(), {**params, "by": by, "how": how}).fetchone()
    if not inserted:  # another tenant bound the company since the check
        raise RuntimeError(f"tenant '{tenant}': a company is bound to another tenant (G11)")


def check_and_bind(
    conn: duckdb.DuckDBPyConnection, tenant: str, ids: CompanyIds, *, by: str, how: str
) -> tuple[BindingCheck, bool]:
    """Check the binding and record it when the tenant has none yet, in one transaction;
    returns the check and whether a binding was recorded now."""
    with transaction(conn):
        check = check_binding(conn, tenant, ids)
        new = not check.problems and not _has_row(conn, tenant)
        if new:
            _insert(conn, tenant, ids, by, how)
    return check, new


def rebind(
    conn: duckdb.DuckDBPyConnection, tenant: str, ids: CompanyIds, *, by: str
) -> tuple[BindingCheck, int]:
    """An operator's rebinding: the current companies replace the tenant's binding and its
    open TENANT_BINDING_CHANGED errors are resolved. Refused (nothing changed) when another
    tenant is bound to either company; returns the check and the errors resolved."""
    with transaction(conn):
        check = check_binding(conn, tenant, ids)
        if check.taken:  # nothing written: the commit changes nothing
            return check, 0
        conn.execute(
            "UPDATE sync.tenant_bindings SET replaced_at = now() "
            "WHERE tenant = ? AND replaced_at IS NULL",
            [tenant],
        )
        _insert(conn, tenant, ids, by, "rebind")
        (resolved,) = conn.execute(
            "UPDATE sync.errors SET resolved_at = now() "
            "WHERE tenant = ? AND code = ? AND resolved_at IS NULL",
            [tenant, CODE],
        ).fetchone()
    return check, int(resolved)


def record_refusal(
    duckdb_resource: SyncDuckDB,
    tenant: str,
    run_id: str,
    check: BindingCheck,
    *,
    mode: str,
    full_extract: bool,
    requests: dict[str, int],
) -> None:
    """The refusal as users notice it: TENANT_BINDING_CHANGED in sync.errors (resolving
    nothing else: the run checked nothing) and a failed sync.runs row with the reason."""
    spec = CODES[CODE]
    label = ", ".join(
        f"{_SYSTEM[s]}: firma {check.current[s]}"
        + (f" (koblet til {check.bound[s]})" if s in check.changed else "")
        + (f" (brukes av '{check.taken_by[s]}')" if check.taken_by[s] else "")
        for s in _SYSTEM
        if s in check.changed or check.taken_by[s]
    )
    finding = Finding(
        tenant=tenant,
        run_id=run_id,
        entity=None,
        side=None,
        svenn_id=None,
        tripletex_id=None,
        record_label=label,
        code=CODE,
        severity=spec.severity,
        rule_id=spec.rule_id,
        message=spec.message,
        details={
            "rule_id": spec.rule_id,
            "bound": check.bound,
            "current": check.current,
            "bound_to_other_tenant": check.taken_by,
            "changed": check.changed,
        },
    )
    with duckdb_resource.get_connection() as conn:
        insert_findings(conn, [finding])
        opened, _ = merge_error_log(conn, tenant, run_id, complete=False)
        upsert_run(
            conn,
            tenant,
            run_id,
            mode=mode,
            full_extract=full_extract,
            outcome="failed",
            reason=check.message(),
            requests={system: {"binding": n} for system, n in requests.items()},
            errors_opened=opened,
            errors_resolved=0,
        )
        conn.execute(
            "UPDATE sync.runs SET finished_at = now(), duration_s = "
            "epoch(now()) - epoch(started_at) WHERE tenant = ? AND run_id = ?",
            [tenant, run_id],
        )
        export_parquet(conn, tenant, export_dir())


@dg.asset(
    key=BINDING_KEY,
    deps=[LEASE_KEY],  # G13: the run holds the tenant before it asks the APIs anything
    partitions_def=tenant_partitions,
    group_name="extract",
    owners=["team:sync"],
    kinds={"duckdb", "python", "svenn", "tripletex"},
    description=(
        "G11: the Svenn and Tripletex company the tenant's credentials belong to (Svenn "
        "GET /company, Tripletex >whoAmI), checked against the tenant's binding before "
        "anything is extracted or written; the first run records it. Another company, or "
        "one bound to another tenant, fails the run (TENANT_BINDING_CHANGED) until an "
        "operator runs `sync-pipeline rebind`."
    ),
)
def tenant_binding(
    context: dg.AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource
) -> dg.MaterializeResult:
    tenant, run_id = context.partition_key, context.run.run_id
    config = tenants.get(tenant)
    ids = company_ids(config)
    with duckdb.get_connection() as conn:
        check, new = check_and_bind(conn, tenant, ids, by=f"run {run_id}", how="first_run")
    metadata = {
        "svenn_company_id": dg.MetadataValue.int(ids.svenn),
        "tripletex_company_id": dg.MetadataValue.int(ids.tripletex),
        "bound_now": new,
        "requests_svenn": dg.MetadataValue.int(ids.requests["svenn"]),
        "requests_tripletex": dg.MetadataValue.int(ids.requests["tripletex"]),
    }
    if check.problems:
        record_refusal(
            duckdb,
            tenant,
            run_id,
            check,
            mode=config.mode,
            full_extract=context.run.tags.get(FULL_EXTRACT_TAG) == "true",
            requests=ids.requests,
        )
        raise dg.Failure(description=check.message(), metadata=metadata)
    context.log.info(
        f"tenant {tenant}: Svenn company {ids.svenn}, Tripletex company {ids.tripletex}"
        + (" (bound now)" if new else " (as bound)")
    )
    return dg.MaterializeResult(metadata={"dagster/row_count": 1, **metadata})
