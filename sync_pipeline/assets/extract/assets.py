"""The ``extract`` step: both systems' snapshots, listed at the same time (issue 13).

One multi-asset for both systems, so a run executed in one process (the jobs' in-process
executor) still lists Tripletex and Svenn in parallel: the step's wall time is the slower
system's, not the sum of both. Subsettable per system and entity.
"""

import dagster as dg

from sync_pipeline.assets.extract import svenn, tripletex
from sync_pipeline.assets.extract.outputs import ExtractConfig, extract_sides, specs
from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.resources.storage import SyncDuckDB
from sync_pipeline.tenants import TenantsResource


@dg.multi_asset(
    name="extract",
    specs=specs("tripletex", tripletex.NOTES) + specs("svenn", svenn.NOTES),
    partitions_def=tenant_partitions,
    can_subset=True,
    description=(tripletex.__doc__ or "").split("\n\n")[0]
    + " "
    + (svenn.__doc__ or "").split("\n\n")[0]
    + " Both systems are listed at the same time, a thread each.",
)
def extract(
    context: dg.AssetExecutionContext,
    config: ExtractConfig,
    duckdb: SyncDuckDB,
    tenants: TenantsResource,
):
    yield from extract_sides(
        context,
        duckdb,
        [
            tripletex.tripletex_side(context, duckdb, tenants, config.tripletex),
            svenn.svenn_side(context, duckdb, tenants, config.svenn),
        ],
    )
