"""Sensors: the tenants-file sensor keeps the tenant partitions in step with the file.

Adding a tenant is an edit of the tenants file, not a code change: within a minute the
sensor adds its partition (and removes the partition of a tenant that left the file).
A file that cannot be read or validated changes nothing: the sensor skips with the
file's one-line error, so a typo never removes every tenant.
"""

from collections.abc import Iterable

import dagster as dg

from sync_pipeline.partitions import tenant_partitions
from sync_pipeline.tenants import TenantConfigError, TenantsResource

PARTITIONS_NAME = tenant_partitions.name


def partition_changes(
    existing: Iterable[str], wanted: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(keys to add, keys to remove) to turn ``existing`` into ``wanted``."""
    have, want = set(existing), set(wanted)
    return sorted(want - have), sorted(have - want)


def ensure_tenant_partitions(instance: dg.DagsterInstance, tenant_keys: Iterable[str]) -> list[str]:
    """Add the partitions of ``tenant_keys`` that do not exist yet; returns those added.

    For callers that launch a run for a tenant right away (the CLI) and cannot wait
    for the sensor's next tick. Never removes a partition.
    """
    to_add, _ = partition_changes(instance.get_dynamic_partitions(PARTITIONS_NAME), tenant_keys)
    if to_add:
        instance.add_dynamic_partitions(PARTITIONS_NAME, to_add)
    return to_add


@dg.sensor(
    name="tenant_partitions_sensor",
    description="Keeps the `tenants` partitions equal to the tenants in the tenants file.",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def tenant_partitions_sensor(context: dg.SensorEvaluationContext, tenants: TenantsResource):
    try:
        wanted = tenants.load()
    except TenantConfigError as err:
        return dg.SkipReason(f"tenants file not usable, partitions unchanged: {err}")
    to_add, to_remove = partition_changes(
        context.instance.get_dynamic_partitions(PARTITIONS_NAME), wanted
    )
    if not to_add and not to_remove:
        return dg.SkipReason(f"partitions already match the {len(wanted)} tenant(s) in the file")
    requests: list = []
    if to_add:
        requests.append(tenant_partitions.build_add_request(to_add))
        context.log.info(f"adding tenant partitions: {', '.join(to_add)}")
    if to_remove:
        requests.append(tenant_partitions.build_delete_request(to_remove))
        context.log.info(f"removing tenant partitions: {', '.join(to_remove)}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


SENSORS: list = [tenant_partitions_sensor]
