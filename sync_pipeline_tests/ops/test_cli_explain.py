"""Issue 16: `sync-pipeline explain` tells one record's story from real runs against both
sandboxes — each case shows the rule id, the Norwegian message and the run ids."""

from __future__ import annotations

import json

import pytest

from sync_pipeline import cli
from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline_tests.apply.harness import TENANT, WorldTenant, failure_text

pytestmark = [pytest.mark.integration]
MANY = 10_000


@pytest.fixture
def world(tripletex_sandbox, svenn_sandbox, tmp_path, monkeypatch):
    """Two empty companies; ``make(**settings)`` gives the tenant and its Tripletex and Svenn
    clients (settings: e.g. the G12 knobs)."""
    made = []

    def make(**settings) -> tuple[WorldTenant, TripletexClient, SvennClient]:
        tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, None, **settings)
        monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tenant.db_path))
        monkeypatch.setenv("SYNC_TENANTS_FILE", str(tenant.tenants_file))
        tx, sv = tenant.clients()
        made.append((tx, sv))
        return tenant, tx, sv

    yield make
    for tx, sv in made:
        tx.close()
        sv.close()


def sync(tenant: WorldTenant) -> str:
    result = tenant.run()
    assert result.success, failure_text(result)
    return result.run_id


def explain(capsys, entity: str, *ids: str, fmt: str = "json"):
    capsys.readouterr()
    code = cli.main(["explain", "--tenant", TENANT, "--entity", entity, *ids, "--format", fmt])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out) if fmt == "json" else out


def kinds(story: dict, kind: str) -> list[dict]:
    return [e for e in story["events"] if e["kind"] == kind]


def test_P1_project_without_start_date_explained(world, capsys):
    tenant, _, sv = world()
    project = sv.create("projects", {"display_id": "300", "name": "Uten start"})
    run_id = sync(tenant)

    story = explain(capsys, "project", "--svenn-id", str(project["id"]))

    assert story["seen"] and story["links"] == []
    (check,) = kinds(story, "eligibility_check")
    assert (check["rule_id"], check["code"], check["run_id"]) == (
        "P1",
        "PROJECT_MISSING_START_DATE",
        run_id,
    )
    (error,) = story["open_errors"]
    assert (error["rule_id"], error["message"], error["run_id"]) == (
        "P1",
        "Prosjekt mangler startdato.",
        run_id,
    )
    assert story["runs"][0]["run_id"] == run_id
    assert any("P1" in n and "Prosjekt mangler startdato." in n for n in story["next_run"])
    text = explain(capsys, "project", "--number", "300", fmt="text")
    assert "PROJECT_MISSING_START_DATE [P1]" in text and run_id in text
    # the read-only connection is closed: a sync can open the file for writing at once
    assert tenant.query("SELECT count(*) FROM sync.runs") == [(1,)]


def test_C6_customer_detached_by_svenn_deletion_explained(world, capsys):
    tenant, _, sv = world()
    customer = sv.create("customers", {"name": "Borte AS", "customer_number": "5001"})
    created_in = sync(tenant)
    sv.delete("customers", customer["id"])
    detached_in = sync(tenant)

    story = explain(capsys, "customer", "--svenn-id", str(customer["id"]))

    (link,) = story["links"]
    assert (link["state"], link["origin"]) == ("detached", "svenn")
    (detachment,) = story["detachments"]
    assert (detachment["rule_id"], detachment["run_id"]) == ("C6", detached_in)
    (error,) = [e for e in story["open_errors"] if e["code"] == "LINK_DETACHED"]
    assert error["rule_id"] == "C6" and error["message"]  # the rule that detached it
    assert f"relink --tenant {TENANT} --entity customer --svenn-id {customer['id']}" in " ".join(
        story["next_run"]
    )
    created = [e for e in kinds(story, "operation") if e["operation"] == "create"]
    assert [(e["run_id"], e["outcome"]) for e in created] == [(created_in, "done")]
    assert {r["run_id"] for r in story["runs"]} >= {created_in, detached_in}
    # the same story from the Tripletex side
    other = explain(capsys, "customer", "--tripletex-id", str(link["tripletex_id"]))
    assert other["detachments"] == story["detachments"]


def test_G12_held_create_explained(world, capsys):
    tenant, _, sv = world(mass_create_threshold=0.02, mass_create_min_records=5)
    sv.create("customers", {"name": "Første AS", "customer_number": "7000", "email": "a@b.no"})
    sync(tenant)  # go-live for customers: one link
    new = [
        sv.create("customers", {"name": f"Ny {n}", "customer_number": str(n), "email": "a@b.no"})
        for n in range(7001, 7007)
    ]
    held_in = sync(tenant)

    story = explain(capsys, "customer", "--svenn-id", str(new[0]["id"]))

    (planned,) = kinds(story, "planned")
    assert (planned["operation"], planned["held_reason"], planned["run_id"]) == (
        "create",
        "mass_create",
        held_in,
    )
    (error,) = [e for e in story["open_errors"] if e["code"] == "MASS_CREATE_HELD"]
    assert error["rule_id"] == "G12" and error["run_id"] == held_in and error["message"]
    assert any(f"confirm-creates --tenant {TENANT}" in n and "G12" in n for n in story["next_run"])
    assert story["links"] == []


def test_G2_conflict_newest_wins_explained(world, capsys):
    tenant, tx, sv = world()
    customer = sv.create("customers", {"name": "Før AS", "customer_number": "6001"})
    sync(tenant)
    ((tripletex_id,),) = tenant.query(
        "SELECT tripletex_id FROM sync.links WHERE entity = 'customer' AND svenn_id = ?",
        customer["id"],
    )
    version = tx.get(f"/customer/{tripletex_id}", fields="version")["version"]
    tx.put(f"/customer/{tripletex_id}", {"name": "Tripletex AS", "version": version})
    sv.update("customers", customer["id"], {"name": "Svenn AS"})  # the newer edit
    conflict_in = sync(tenant)

    story = explain(capsys, "customer", "--number", "6001")

    conflicts = kinds(story, "conflict")
    assert len(conflicts) == 1, story["events"]
    (conflict,) = conflicts
    assert (conflict["rule_id"], conflict["field"], conflict["run_id"]) == (
        "G2",
        "name",
        conflict_in,
    )
    assert (conflict["svenn_value"], conflict["tripletex_value"], conflict["winner"]) == (
        "Svenn AS",
        "Tripletex AS",
        "svenn",
    )
    (link,) = story["links"]
    assert link["state"] == "active" and link["base"]["name"] == "Svenn AS"
    text = explain(capsys, "customer", "--tripletex-id", str(tripletex_id), fmt="text")
    assert "conflict [G2] on name" in text and "svenn won" in text and conflict_in in text


def test_G7_record_never_seen_explained(world, capsys, tripletex_sandbox):
    """A customer the Tripletex listing filtered out has never been seen: explain says so and
    names the listing's run."""
    tenant, tx, _ = world()
    hidden = tx.post("/customer", {"name": "Skjult AS", "customerNumber": 8001})
    try:
        tripletex_sandbox.add_fault(
            r"^/v2/customer$", method="GET", hide_ids=[hidden["id"]], count=MANY
        )
        run_id = sync(tenant)
    finally:
        tripletex_sandbox.clear_faults()

    story = explain(capsys, "customer", "--tripletex-id", str(hidden["id"]))

    assert not story["seen"] and story["events"] == [] and story["links"] == []
    reason = story["never_seen"]["reason"]
    assert "not in the last complete customer listing" in reason and run_id in reason
    assert [e["run_id"] for e in story["never_seen"]["extracts"]] == [run_id]
    text = explain(capsys, "customer", "--tripletex-id", str(hidden["id"]), fmt="text")
    assert "never seen by the sync" in text


def test_G10_error_log_metadata_links_each_open_error_to_its_explain_command(world, capsys):
    """The UI's error-log asset names, per open record error, the command that explains it;
    the record's text stays data (escaped), and the command works as shown."""
    tenant, _, sv = world()
    project = sv.create("projects", {"display_id": "301", "name": "Bad | [x](http://evil)"})
    result = tenant.run()
    assert result.success, failure_text(result)

    (materialization,) = result.asset_materializations_for_node("sync__errors")
    table = materialization.metadata["explain_open_errors"].value
    command = f"sync-pipeline explain --tenant {TENANT} --entity project --svenn-id {project['id']}"
    (row,) = [line for line in table.splitlines() if "PROJECT_MISSING_START_DATE" in line]
    assert row.endswith(f"| {command} |")
    assert "\\| \\[x\\]\\(http://evil\\)" in row.replace("\\:", ":")
    # the numbers the UI plots over time: open errors per code, runs per outcome
    meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    assert meta["open_errors_PROJECT_MISSING_START_DATE"] == 1
    assert meta["open_errors_MASS_CREATE_HELD"] == 0  # every code, so a line drops to 0
    assert (meta["runs_success"], meta["runs_failed"]) == (1, 0)
    capsys.readouterr()
    assert cli.main([*command.split()[1:], "--format", "json"]) == 0  # the command as shown
    assert json.loads(capsys.readouterr().out)["open_errors"][0]["rule_id"] == "P1"


def test_G3_key_match_explained(world, capsys):
    """A customer in both systems with one customer number is matched by key (G3), and its
    story shows the match — how it matched and that it was a match, not an existing link."""
    tenant, tx, sv = world()
    customer = sv.create("customers", {"name": "Begge AS", "customer_number": "6101"})
    tx.post("/customer", {"name": "Begge AS", "customerNumber": 6101})
    run_id = sync(tenant)

    story = explain(capsys, "customer", "--svenn-id", str(customer["id"]))
    [match] = kinds(story, "match")
    assert (match["rule_id"], match["run_id"], match["match_kind"]) == ("G3", run_id, "matched")
    assert match["via"] == "key"
    assert "matched [G3] by key (matched)" in explain(
        capsys, "customer", "--svenn-id", str(customer["id"]), fmt="text"
    )
