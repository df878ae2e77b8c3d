"""The jobs operators run: a whole sync, or the plan alone (review, G9)."""

from dagster import AssetSelection, define_asset_job

from sync_pipeline.partitions import tenant_partitions

#: Run tag that asks the extract assets for a full (not incremental) extract.
FULL_EXTRACT_TAG = "sync_pipeline/full_extract"

sync_job = define_asset_job(
    "sync_job",
    selection=AssetSelection.groups("extract", "rules", "apply"),
    partitions_def=tenant_partitions,
    description="Extract both systems, plan by the sync rules and apply the plan, for one tenant.",
)

plan_job = define_asset_job(
    "plan_job",
    selection=AssetSelection.groups("extract", "rules"),
    partitions_def=tenant_partitions,
    description="Extract both systems and compute the plan without writing to either (G9).",
)
