"""The tenants-file sensor and ``ensure_tenant_partitions``: a tenant is a file edit away."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from sync_pipeline.sensors import ensure_tenant_partitions, tenant_partitions_sensor
from sync_pipeline.tenants import TenantsResource

TENANT = """
  {key}:
    mode: active
    svenn: {{base_url: "http://127.0.0.1:1/api/v1", api_key: "k-{key}"}}
    tripletex:
      base_url: "http://127.0.0.1:2/v2"
      consumer_token: "c-{key}"
      employee_token: "e-{key}"
"""


def write_tenants(path: Path, *keys: str) -> None:
    path.write_text("tenants:" + "".join(TENANT.format(key=k) for k in keys), encoding="utf-8")


def tick(instance: dg.DagsterInstance, path: Path):
    context = dg.build_sensor_context(
        instance=instance, resources={"tenants": TenantsResource(tenants_file=str(path))}
    )
    result = tenant_partitions_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_sensor_adds_new_tenants_and_removes_vanished_ones(tmp_path, instance):
    path = tmp_path / "tenants.yaml"
    write_tenants(path, "acme", "bygg")
    first = tick(instance, path)
    assert isinstance(first, dg.SensorResult)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "bygg"]

    write_tenants(path, "bygg", "carpentry")
    tick(instance, path)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["bygg", "carpentry"]

    again = tick(instance, path)
    assert isinstance(again, dg.SkipReason)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["bygg", "carpentry"]


def test_sensor_leaves_partitions_alone_when_the_file_is_broken(tmp_path, instance):
    path = tmp_path / "tenants.yaml"
    write_tenants(path, "acme")
    tick(instance, path)
    path.write_text("tenants:\n  acme:\n    mode: sometimes\n", encoding="utf-8")
    result = tick(instance, path)
    assert isinstance(result, dg.SkipReason)
    assert "acme" in result.skip_message and "partitions unchanged" in result.skip_message
    assert instance.get_dynamic_partitions("tenants") == ["acme"]
    path.unlink()
    assert isinstance(tick(instance, path), dg.SkipReason)
    assert instance.get_dynamic_partitions("tenants") == ["acme"]


def test_sensor_messages_carry_no_credentials(tmp_path, instance):
    path = tmp_path / "tenants.yaml"
    write_tenants(path, "acme")
    path.write_text(path.read_text().replace("mode: active", "mode: bogus"), encoding="utf-8")
    result = tick(instance, path)
    assert isinstance(result, dg.SkipReason)
    for secret in ("k-acme", "c-acme", "e-acme"):
        assert secret not in result.skip_message


def test_ensure_tenant_partitions_adds_only_missing_ones(instance):
    assert ensure_tenant_partitions(instance, ["acme"]) == ["acme"]
    assert ensure_tenant_partitions(instance, ["acme", "bygg"]) == ["bygg"]
    assert ensure_tenant_partitions(instance, ["bygg"]) == []
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "bygg"]
