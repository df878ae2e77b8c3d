"""The jobs operators run: a whole sync, or the plan alone (review, G9).

Both start with ``sync/lease`` (group ``extract``): one run per tenant at a time, whoever
starts it (G13); a failed step releases the lease through the failure hook.
"""

from dagster import AssetSelection, define_asset_job

from sync_pipeline.assets.lease import release_lease_on_failure
from sync_pipeline.partitions import tenant_partitions

sync_job = define_asset_job(
    "sync_job",
    selection=AssetSelection.groups("extract", "rules", "apply"),
    partitions_def=tenant_partitions,
    description="Extract both systems, plan by the sync rules and apply the plan, for one tenant.",
    hooks={release_lease_on_failure},
)

plan_job = define_asset_job(
    "plan_job",
    selection=AssetSelection.groups("extract", "rules"),
    partitions_def=tenant_partitions,
    description="Extract both systems and compute the plan without writing to either (G9).",
    hooks={release_lease_on_failure},
)
