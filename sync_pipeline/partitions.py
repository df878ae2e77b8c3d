"""Each tenant (a company with the integration on) is one partition of every asset; a run's
tags say how that partition is synced."""

from dagster import DynamicPartitionsDefinition

tenant_partitions = DynamicPartitionsDefinition(name="tenants")

#: Run tag that asks the extract assets for a full (not incremental) extract. It lives here,
#: below the assets and the jobs, so both read it without importing each other.
FULL_EXTRACT_TAG = "sync_pipeline/full_extract"
