"""Targeted incremental extraction (issue 15) through the real ``sync_job`` against both
sandboxes: a run carrying a webhook batch reads the Tripletex records its events named by
id instead of listing them, and a deletion event deletes nothing by itself (G7): a record
still in Tripletex stays (DELETION_NOT_CONFIRMED), one really gone takes today's P9 path.

The events are written into ``sync.webhook_events`` as the sensor leaves them (receiver,
spool and sensor have their own tests); the run gets the sensor's tag.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sync_pipeline.webhooks.sensor import WEBHOOK_BATCH_TAG
from sync_pipeline_tests.apply.harness import TENANT, WorldTenant, failure_text

pytestmark = [pytest.mark.integration]

SEED = 47
#: Small pages, so listing the projects takes several requests and a read by id one.
PAGE_SIZE = 2
RUN_CONFIG = {"ops": {"extract": {"config": {"tripletex": {"page_size": PAGE_SIZE}}}}}


def _world(tripletex_sandbox, svenn_sandbox, tmp_path) -> WorldTenant:
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, SEED)
    for _ in range(2):  # the first extracts fully; the second sets the incremental baseline
        result = tenant.run(run_config=RUN_CONFIG)
        assert result.success, failure_text(result)
    return tenant


def _linked_project(tenant: WorldTenant) -> tuple[int, int]:
    rows = tenant.query(
        "SELECT l.svenn_id, l.tripletex_id FROM sync.links l "
        "JOIN staging.svenn_projects s ON s.tenant = l.tenant AND s.id = l.svenn_id "
        "WHERE l.tenant = ? AND l.entity = 'project' AND l.state = 'active' "
        "AND NOT s.deleted AND s.status = 'active' ORDER BY l.svenn_id LIMIT 2",
        TENANT,
    )
    assert len(rows) == 2, "the world has too few active linked projects"
    return rows


def _events(tenant: WorldTenant, batch: str, events: list[tuple[str, str, int]]) -> None:
    """Tripletex events (entity, action, record id) of ``batch``, as the sensor claims them."""
    now = datetime.now(UTC)
    for seq, (entity, action, record_id) in enumerate(events):
        tenant.query(
            "INSERT INTO sync.webhook_events (tenant, source, delivery_id, seq, event, entity, "
            "action, record_id, version, received_at, stored_at, batch, batched_at) "
            "VALUES (?, 'tripletex', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            TENANT,
            f"{batch}-{seq}",
            seq,
            f"{entity}.{action}",
            entity,
            action,
            record_id,
            now,
            now,
            batch,
            now,
        )


def _project_reads(tenant: WorldTenant) -> int:
    """GETs of the /project collection so far (listings and id lookups, not /project/<id>)."""
    return tenant.tripletex_sandbox.stats(tenant.tripletex_key)["requests"].get(
        "GET /v2/project", 0
    )


def _detached(tenant: WorldTenant) -> list[tuple]:
    return tenant.query(
        "SELECT entity, svenn_id, tripletex_id FROM sync.links WHERE tenant = ? "
        "AND state = 'detached' ORDER BY ALL",
        TENANT,
    )


def _extract(tenant: WorldTenant, run_id: str, entity: str) -> tuple:
    ((mode, complete),) = tenant.query(
        "SELECT mode, complete FROM sync.extracts WHERE run_id = ? AND system = 'tripletex' "
        "AND entity = ?",
        run_id,
        entity,
    )
    return mode, complete


def test_a_changed_tripletex_project_is_read_by_id_and_reaches_svenn(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    (project_s, project_t), _ = _linked_project(tenant)
    (listed_pages,) = tenant.query(
        "SELECT count(DISTINCT page) FROM raw.tripletex_projects WHERE tenant = ?", TENANT
    )[0]
    assert listed_pages >= 3  # a listing would cost several requests
    tx, sv = tenant.clients()
    version = tx.get(f"/project/{project_t}", fields="version")["version"]
    tx.put(f"/project/{project_t}", {"id": project_t, "version": version, "name": "Hookprosjekt"})
    _events(tenant, "b1", [("project", "update", project_t)])
    detached = _detached(tenant)

    before = _project_reads(tenant)
    run = tenant.run(run_config=RUN_CONFIG, tags={WEBHOOK_BATCH_TAG: "b1"})
    assert run.success, failure_text(run)

    assert _project_reads(tenant) - before == 1  # one lookup by id, no listing
    assert _extract(tenant, run.run_id, "project") == ("targeted", True)
    assert sv.get("projects", project_s)["name"] == "Hookprosjekt"
    # the rest of the snapshot is kept: no linked project looks deleted
    assert _detached(tenant) == detached

    # an untagged run lists as before, and the snapshot it leaves is the same
    before = _project_reads(tenant)
    plain = tenant.run(run_config=RUN_CONFIG)
    assert plain.success, failure_text(plain)
    assert _project_reads(tenant) - before >= listed_pages
    assert _extract(tenant, plain.run_id, "project") == ("incremental", True)
    assert tenant.query(
        "SELECT count(*), count(DISTINCT id) FROM staging.tripletex_projects WHERE tenant = ? "
        "AND name = 'Hookprosjekt'",
        TENANT,
    ) == [(1, 1)]
    tx.close()
    sv.close()


def test_G7_a_deletion_event_deletes_nothing_unless_the_record_is_really_gone(
    tripletex_sandbox, svenn_sandbox, tmp_path
):
    tenant = _world(tripletex_sandbox, svenn_sandbox, tmp_path)
    (alive_s, alive_t), (gone_s, gone_t) = _linked_project(tenant)
    tx, sv = tenant.clients()
    tx.delete(f"/project/{gone_t}")
    _events(tenant, "b2", [("project", "delete", alive_t), ("project", "delete", gone_t)])

    run = tenant.run(run_config=RUN_CONFIG, tags={WEBHOOK_BATCH_TAG: "b2"})
    assert run.success, failure_text(run)
    assert _extract(tenant, run.run_id, "project") == ("targeted", True)

    # still in Tripletex: nothing deleted, completed or detached anywhere; the run says so
    assert tx.exists("project", alive_t)
    assert sv.get("projects", alive_s)["status"] == "active"
    assert tenant.query(
        "SELECT state FROM sync.links WHERE entity = 'project' AND svenn_id = ?", alive_s
    ) == [("active",)]
    rows = tenant.query(
        "SELECT svenn_id, tripletex_id, severity, resolved_at IS NULL, details FROM sync.errors "
        "WHERE code = 'DELETION_NOT_CONFIRMED' AND entity = 'project'"
    )
    assert [(s, t, sev, is_open) for s, t, sev, is_open, _ in rows] == [
        (alive_s, alive_t, "info", True)
    ]
    assert json.loads(rows[0][4])["webhook_batch"] == "b2"

    # really gone: P9 as for a record missing from a complete listing
    assert sv.get("projects", gone_s)["status"] == "completed"
    assert tenant.query(
        "SELECT state FROM sync.links WHERE entity = 'project' AND svenn_id = ?", gone_s
    ) == [("detached",)]
    ((details,),) = tenant.query(
        "SELECT details FROM sync.errors WHERE code = 'LINK_DETACHED' AND svenn_id = ?", gone_s
    )
    assert json.loads(details)["rule_id"] == "P9"
    tx.close()
    sv.close()
