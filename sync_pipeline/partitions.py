"""Each tenant (a company with the integration on) is one partition of every asset."""

from dagster import DynamicPartitionsDefinition

tenant_partitions = DynamicPartitionsDefinition(name="tenants")
