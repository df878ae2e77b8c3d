"""The one place the Dagster code location is assembled."""

from dagster import (
    Definitions,
    load_asset_checks_from_package_module,
    load_assets_from_package_module,
)

from sync_pipeline import assets
from sync_pipeline.checks import CHECKS
from sync_pipeline.jobs import plan_job, sync_job
from sync_pipeline.resources.storage import SyncDuckDB, duckdb_path
from sync_pipeline.schedules import SCHEDULES, failing_tenants_sensor
from sync_pipeline.sensors import SENSORS
from sync_pipeline.tenants import TenantsResource, tenants_file_path

defs = Definitions(
    assets=load_assets_from_package_module(assets),
    asset_checks=[*load_asset_checks_from_package_module(assets), *CHECKS],
    jobs=[sync_job, plan_job],
    schedules=SCHEDULES,
    sensors=[*SENSORS, failing_tenants_sensor],
    resources={
        "duckdb": SyncDuckDB(database=duckdb_path()),
        "tenants": TenantsResource(tenants_file=str(tenants_file_path())),
    },
)
