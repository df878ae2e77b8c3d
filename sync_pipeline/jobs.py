"""The jobs operators run: a whole sync, or the plan alone (review, G9).

Both start with ``sync/lease`` (group ``extract``): one run per tenant at a time, whoever
starts it (G13); a failed step releases the lease through the failure hook.

Both run their steps in the run's own process (``in_process_executor``), one after the
other. The steps form a chain anyway, but for the extract and apply steps, which work on
both systems at once with a thread each; a fresh interpreter per step (the multiprocess
executor) cost about 4 CPU-seconds a step, 75 of the 79 CPU-seconds a run with nothing to
do took (``docs/noop-run-cost.md``). Runs of different tenants still run in separate
processes, one per run.
"""

from dagster import AssetSelection, define_asset_job, in_process_executor

from sync_pipeline.assets.lease import release_lease_on_failure
from sync_pipeline.partitions import tenant_partitions

sync_job = define_asset_job(
    "sync_job",
    selection=AssetSelection.groups("extract", "rules", "apply"),
    partitions_def=tenant_partitions,
    description="Extract both systems, plan by the sync rules and apply the plan, for one tenant.",
    hooks={release_lease_on_failure},
    executor_def=in_process_executor,
)

plan_job = define_asset_job(
    "plan_job",
    selection=AssetSelection.groups("extract", "rules"),
    partitions_def=tenant_partitions,
    description="Extract both systems and compute the plan without writing to either (G9).",
    hooks={release_lease_on_failure},
    executor_def=in_process_executor,
)
