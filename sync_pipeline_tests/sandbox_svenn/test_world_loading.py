"""Seeds: ``empty``, ``demo`` and ``world`` load the generator's Svenn side in bulk, without HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from sync_pipeline.generator import DEMO_SEED, generate_world
from sync_pipeline.sandbox.svenn.fields import FIELDS
from sync_pipeline.sandbox.svenn.hub import SvennHub
from sync_pipeline.sandbox.svenn.store import Company

from .conftest import Svenn, make_client


def api_fields(record: dict, resource: str) -> dict:
    return {k: record[k] for k in ("id", *FIELDS[resource])}


def test_demo_seed_serves_the_svenn_side_of_the_generated_world_with_tombstones():
    world = generate_world(DEMO_SEED, "demo")
    with make_client() as client:
        client.app.state.hub.create_company("demo-key", "demo", {})
        svenn = Svenn(client, "demo-key")
        assert svenn.get("/company").json() == {"id": 2, **world.company}
        for resource, records in world.svenn.items():
            served = {
                r["id"]: r for r in svenn.list_all(resource, include_deleted="true", limit=500)
            }
            assert sorted(served) == [r["id"] for r in records]
            for source in records:
                record = served[source["id"]]
                assert api_fields(record, resource) == {
                    k: v for k, v in source.items() if k != "deleted"
                }
                assert (record["deleted_at"] is not None) == bool(source.get("deleted"))
                assert record["version"] == (2 if source.get("deleted") else 1)
            live = [r["id"] for r in records if not r.get("deleted")]
            assert sorted(r["id"] for r in svenn.list_all(resource, limit=500)) == live
        assert any(r.get("deleted") for r in world.svenn["projects"])  # tombstones were there
        # New records continue after the world's ids.
        new = svenn.create("customers", {"name": "Ny kunde"})
        assert new["id"] == max(r["id"] for r in world.svenn["customers"]) + 1


def test_world_seed_takes_the_generator_seed_and_scale():
    hub = SvennHub(startup_key="k", startup_seed="empty")
    company = hub.create_company("w", "world", {"world_seed": 7, "scale": 0.001})
    world = generate_world(7, 0.001)
    for resource, records in world.svenn.items():
        assert len(company.tables[resource].records) == len(records)
    assert company.name == world.company["name"]


def test_loading_50000_customers_takes_well_under_a_few_seconds():
    customers = [
        {"id": i, "customer_number": str(10_000 + i), "name": f"Kunde {i} AS", "is_active": True}
        for i in range(1, 50_001)
    ]
    company = Company(id=1, name="Stor")
    started = time.perf_counter()
    company.load("customers", customers)
    assert time.perf_counter() - started < 3.0
    page, after = company.page("customers", limit=1000)
    assert [c["id"] for c in page] == list(range(1, 1001)) and after is not None


def test_a_world_with_two_live_records_sharing_a_number_is_refused():
    company = Company(id=1, name="x")
    with pytest.raises(ValueError, match="share customer_number"):
        company.load(
            "customers",
            [
                {"id": 1, "name": "A", "customer_number": "1"},
                {"id": 2, "name": "B", "customer_number": "1"},
            ],
        )
    # A tombstone keeps its number without blocking a live record's.
    company = Company(id=1, name="x")
    company.load(
        "customers",
        [
            {"id": 1, "name": "A", "customer_number": "1", "deleted": True},
            {"id": 2, "name": "B", "customer_number": "1"},
        ],
    )
    assert company.tables["customers"].numbers == {"1": 2}


def test_a_world_record_with_fields_svenn_does_not_have_is_refused():
    with pytest.raises(ValueError, match="unknown fields"):
        Company(id=1, name="x").load("employees", [{"id": 1, "first_name": "A", "salary": 1}])


@pytest.mark.integration
def test_the_session_sandbox_serves_the_demo_world_over_http(svenn_sandbox):
    world = generate_world(DEMO_SEED, "demo")
    headers = {"Authorization": f"Bearer {svenn_sandbox.api_key}"}
    resp = requests.get(f"{svenn_sandbox.base_url}/company", headers=headers, timeout=10)
    assert resp.json()["name"] == world.company["name"]
    resp = requests.get(
        f"{svenn_sandbox.base_url}/employees",
        params={"limit": 500, "include_deleted": "true"},
        headers=headers,
        timeout=10,
    )
    assert len(resp.json()["data"]) == len(world.svenn["employees"])
