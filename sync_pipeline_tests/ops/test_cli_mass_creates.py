"""G12: in a tenant that already has links, an unusual number of new records of an entity
is held (MASS_CREATE_HELD) until an operator confirms with `sync-pipeline confirm-creates`;
a first sync and small counts are never held. Through the console script, against both
sandboxes."""

from __future__ import annotations

import json

import pytest

from sync_pipeline.tenants import load_tenants
from sync_pipeline_tests.ops.conftest import parse_summary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Low enough that a handful of new customers exceeds the share of the demo world's links.
THRESHOLD = 0.02


def _synced_tenant(workspace, tripletex_sandbox, svenn_sandbox) -> str:
    workspace.add_tenant(
        "acme",
        svenn_url=svenn_sandbox.base_url,
        svenn_key=svenn_sandbox.new_company(seed="demo"),
        tripletex_url=tripletex_sandbox.base_url,
        tripletex_key=tripletex_sandbox.new_company(seed="demo"),
        mass_create_threshold=THRESHOLD,
    )
    first = workspace.cli("run", "--tenant", "acme")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return first.stdout


def _new_svenn_customers(workspace, count: int) -> set[str]:
    """``count`` new customers in Svenn; returns their customer numbers."""
    svenn = load_tenants(workspace.root / "tenants.yaml")["acme"].svenn_client()
    numbers = {str(880000 + i) for i in range(count)}
    try:
        for number in sorted(numbers):
            svenn.create(
                "customers",
                {"name": f"Ny kunde {number}", "customer_number": number, "email": "a@b.no"},
            )
    finally:
        svenn.close()
    return numbers


def _tripletex_customer_numbers(workspace) -> set[str]:
    client = load_tenants(workspace.root / "tenants.yaml")["acme"].tripletex_client()
    try:
        return {
            str(c["customerNumber"])
            for inactive in (False, True)
            for c in client.list_all("/customer", {"isInactive": inactive}, "customerNumber")
        }
    finally:
        client.close()


def _open_codes(workspace) -> dict[str, dict]:
    errors = json.loads(workspace.cli("errors", "--tenant", "acme", "--format", "json").stdout)
    return {e["code"]: e for e in errors}


def _held_rows(workspace) -> list[tuple]:
    with workspace.db() as conn:
        return conn.execute(
            "SELECT entity, operation, count(*) FROM sync.plan WHERE tenant = 'acme' "
            "AND held_reason = 'mass_create' GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_G12_mass_creates_held_until_confirmed(workspace, tripletex_sandbox, svenn_sandbox):
    _synced_tenant(workspace, tripletex_sandbox, svenn_sandbox)
    numbers = _new_svenn_customers(workspace, 6)

    held = workspace.cli("run", "--tenant", "acme")

    assert held.returncode == 0, held.stdout[-3000:] + held.stderr[-3000:]
    assert "6 creates held by the mass-create guard (G12)" in held.stdout
    assert not numbers & _tripletex_customer_numbers(workspace)  # nothing created yet
    error = _open_codes(workspace)["MASS_CREATE_HELD"]
    assert error["entity"] == "customer" and error["severity"] == "error"
    assert error["details"]["creates"] == 6 and error["details"]["threshold"] == THRESHOLD
    assert _held_rows(workspace) == [("customer", "create", 6)]

    again = workspace.cli("run", "--tenant", "acme")  # still held without a confirmation
    assert again.returncode == 0 and "creates held" in again.stdout
    assert not numbers & _tripletex_customer_numbers(workspace)

    confirm = workspace.cli("confirm-creates", "--tenant", "acme", "--by", "kari")
    assert confirm.returncode == 0 and "confirmed by kari" in confirm.stdout
    assert "customer (6)" in confirm.stdout
    applied = workspace.cli("run", "--tenant", "acme")

    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    assert parse_summary(applied.stdout)["acme/customer"]["created"] == 6
    assert numbers <= _tripletex_customer_numbers(workspace)
    assert "MASS_CREATE_HELD" not in _open_codes(workspace)
    with workspace.db() as conn:
        consumed = conn.execute(
            "SELECT actor, consumed_by_run IS NOT NULL FROM sync.approvals "
            "WHERE action = 'confirm_creates'"
        ).fetchall()
    assert consumed == [("kari", True)]  # counts once; later mass creates hold again
    nothing = workspace.cli("confirm-creates", "--tenant", "acme")
    assert nothing.returncode == 0 and "nothing to confirm" in nothing.stdout


def test_G12_first_sync_not_held(workspace, tripletex_sandbox, svenn_sandbox):
    stdout = _synced_tenant(workspace, tripletex_sandbox, svenn_sandbox)
    created = {k: r["created"] for k, r in parse_summary(stdout).items()}
    assert max(created.values()) >= 5  # far above the share: no links yet, nothing held
    assert "held by the mass-create guard" not in stdout
    assert _held_rows(workspace) == []
    assert "MASS_CREATE_HELD" not in _open_codes(workspace)


def test_G12_small_counts_not_held(workspace, tripletex_sandbox, svenn_sandbox):
    _synced_tenant(workspace, tripletex_sandbox, svenn_sandbox)
    numbers = _new_svenn_customers(workspace, 4)  # above the share, below the minimum of 5

    run = workspace.cli("run", "--tenant", "acme")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert parse_summary(run.stdout)["acme/customer"]["created"] == 4
    assert numbers <= _tripletex_customer_numbers(workspace)
    assert _held_rows(workspace) == []
    assert "MASS_CREATE_HELD" not in _open_codes(workspace)
