"""The one place the Dagster code location is assembled."""

from __future__ import annotations

from pathlib import Path

from dagster import (
    Definitions,
    load_asset_checks_from_package_module,
    load_assets_from_package_module,
)

from sync_pipeline import assets
from sync_pipeline.assets.maintenance import maintenance_job, maintenance_schedule
from sync_pipeline.jobs import plan_job, sync_job
from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path
from sync_pipeline.schedules import SCHEDULES
from sync_pipeline.sensors import SENSORS
from sync_pipeline.tenants import TenantsResource, tenants_file_path


def build_defs(*, tenants_file: str | Path | None = None) -> Definitions:
    """The code location, its runs reading ``tenants_file`` (the CLI's ``--tenants-file``;
    by default ``$SYNC_TENANTS_FILE`` or ``data/tenants.yaml``)."""
    return Definitions(
        assets=load_assets_from_package_module(assets),
        asset_checks=load_asset_checks_from_package_module(assets),
        jobs=[sync_job, plan_job, maintenance_job],
        schedules=[*SCHEDULES, maintenance_schedule],
        sensors=SENSORS,
        resources={
            "duckdb": SyncDuckDB(database=duckdb_path()),
            "tenants": TenantsResource(tenants_file=str(tenants_file or tenants_file_path())),
        },
    )


defs = build_defs()
