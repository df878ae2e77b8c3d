"""``python -m sync_pipeline_tests.store.run_tenant TENANTS_FILE TENANT``: one ``sync_job`` run
of the tenant in this process, as a run worker runs it (own ephemeral instance: only the state
store, ``SYNC_STORE``, is shared). Prints one JSON line: success and run id."""

from __future__ import annotations

import json
import sys

import dagster as dg


def main(tenants_file: str, tenant: str) -> int:
    from sync_pipeline import definitions
    from sync_pipeline.jobs import sync_job
    from sync_pipeline.resources.storage import SyncDuckDB
    from sync_pipeline.tenants import TenantsResource

    defs = dg.Definitions(
        assets=list(definitions.defs.assets or []),
        asset_checks=list(definitions.defs.asset_checks or []),
        jobs=[sync_job],
        resources={
            "duckdb": SyncDuckDB(database="unused-on-a-lake.duckdb"),
            "tenants": TenantsResource(tenants_file=tenants_file),
        },
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", [tenant])
    result = defs.resolve_job_def("sync_job").execute_in_process(
        partition_key=tenant, instance=instance, raise_on_error=False
    )
    print(json.dumps({"success": result.success, "run_id": result.run_id}), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
