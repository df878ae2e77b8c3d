"""The ``rules`` step: the seven rule assets of a run, one after the other in one step.

Each asset stays its own node in the lineage, with its own metadata, and can be
materialized alone (the step is subsettable); they share a Dagster step because each step
costs Dagster's bookkeeping, more than most rules' SQL (issue 13).
"""

from dagster import AssetExecutionContext, multi_asset

from sync_pipeline.assets.rules.creates import creates
from sync_pipeline.assets.rules.deletions import deletions
from sync_pipeline.assets.rules.eligibility import eligibility
from sync_pipeline.assets.rules.matching import pairs
from sync_pipeline.assets.rules.members import members
from sync_pipeline.assets.rules.merge import merge
from sync_pipeline.assets.rules.numbering import numbers
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource

#: In dependency order (each step's deps come before it).
RULE_STEPS = [eligibility, pairs, merge, numbers, deletions, creates, members]


@multi_asset(
    name="rules",
    specs=[step.spec for step in RULE_STEPS],
    partitions_def=tenant_partitions,
    can_subset=True,
    description=__doc__,
)
def rules(context: AssetExecutionContext, duckdb: SyncDuckDB, tenants: TenantsResource):
    tenant = context.partition_key
    config = tenants.get(tenant)
    with duckdb.held_open():
        for step in RULE_STEPS:
            if step.spec.key in context.selected_asset_keys:
                yield step.run(context, duckdb, tenant, config)
