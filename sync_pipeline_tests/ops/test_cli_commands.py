"""The CLI commands that need only DuckDB and the tenants file, through the console script."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest


def _insert_error(conn, tenant, code, severity, entity, svenn_id, label, resolved=False):
    conn.execute(
        """INSERT INTO sync.errors VALUES (?, ?, ?, ?, ?, NULL, ?, ?, '{"rule_id": "P1"}',
           now() - INTERVAL 1 DAY, now(), CASE WHEN ? THEN now() END, 'run-1')""",
        [tenant, code, severity, entity, svenn_id, label, f"melding {code}", resolved],
    )


@pytest.fixture
def two_tenants(workspace):
    workspace.add_offline_tenant("acme")
    workspace.add_offline_tenant("bygg", mode="review")
    with workspace.db() as conn:
        _insert_error(
            conn, "acme", "PROJECT_MISSING_START_DATE", "error", "project", 11, "P-11 Bad"
        )
        _insert_error(conn, "acme", "CUSTOMER_INACTIVE_SKIPPED", "info", "customer", 5, "5 Old AS")
        _insert_error(
            conn, "acme", "EMPLOYEE_MISSING_SURNAME", "error", "employee", 3, "3 Ola", resolved=True
        )
        _insert_error(conn, "bygg", "CUSTOMER_NON_NUMERIC_ID", "error", "customer", 7, "X7 Bygg")
    return workspace


def test_G10_errors_lists_open_errors_of_one_tenant_in_every_format(two_tenants):
    table = two_tenants.cli("errors", "--tenant", "acme")
    assert table.returncode == 0, table.stderr
    assert "PROJECT_MISSING_START_DATE" in table.stdout and "P-11 Bad" in table.stdout
    assert "EMPLOYEE_MISSING_SURNAME" not in table.stdout  # resolved
    assert "CUSTOMER_NON_NUMERIC_ID" not in table.stdout  # other tenant
    # errors come before info
    assert table.stdout.index("PROJECT_MISSING") < table.stdout.index("CUSTOMER_INACTIVE")

    rows = json.loads(two_tenants.cli("errors", "--format", "json").stdout)
    assert {(r["tenant"], r["code"]) for r in rows} == {
        ("acme", "PROJECT_MISSING_START_DATE"),
        ("acme", "CUSTOMER_INACTIVE_SKIPPED"),
        ("bygg", "CUSTOMER_NON_NUMERIC_ID"),
    }
    assert rows[0]["details"] == {"rule_id": "P1"}

    history = list(
        csv.DictReader(
            io.StringIO(
                two_tenants.cli("errors", "--tenant", "acme", "--history", "--format", "csv").stdout
            )
        )
    )
    resolved = [r for r in history if r["code"] == "EMPLOYEE_MISSING_SURNAME"]
    assert len(history) == 3 and resolved and resolved[0]["resolved_at"]


def test_G9_approve_records_who_and_when_once(two_tenants):
    first = two_tenants.cli("approve", "--tenant", "bygg", "--by", "kari")
    assert first.returncode == 0, first.stderr
    assert "kari" in first.stdout
    again = two_tenants.cli("approve", "--tenant", "bygg", "--by", "per")
    assert again.returncode == 0 and "went live already" in again.stdout and "kari" in again.stdout
    active = two_tenants.cli("approve", "--tenant", "acme")
    assert active.returncode == 0 and "active mode already" in active.stdout
    with two_tenants.db() as conn:
        rows = conn.execute(
            "SELECT tenant, action, actor, approved_at IS NOT NULL, consumed_by_run FROM sync.approvals"
        ).fetchall()
    assert rows == [("bygg", "go_live", "kari", True, None)]
    listing = two_tenants.cli("tenants")
    assert "review→active (approved)" in listing.stdout


def _link(conn, tenant, entity, svenn_id, tripletex_id, state):
    conn.execute(
        """INSERT INTO sync.links VALUES (?, ?, ?, ?, ?, 'matched', ?, '{"name": "x"}', 3, 4,
           now(), now())""",
        [tenant, entity, svenn_id, tripletex_id, str(svenn_id), state],
    )


def test_C6_relink_reattaches_a_detached_customer_link_for_a_fresh_merge(two_tenants):
    with two_tenants.db() as conn:
        _link(conn, "acme", "customer", 12, 1012, "detached")
        _link(conn, "bygg", "customer", 12, 2012, "detached")  # same id, other tenant
        _link(conn, "acme", "customer", 13, 1013, "active")
    result = two_tenants.cli(
        "relink", "--tenant", "acme", "--entity", "customer", "--svenn-id", "12"
    )
    assert result.returncode == 0, result.stderr
    assert "1012" in result.stdout
    with two_tenants.db() as conn:
        rows = conn.execute(
            "SELECT tenant, svenn_id, state, base FROM sync.links ORDER BY tenant, svenn_id"
        ).fetchall()
    assert rows == [
        ("acme", 12, "active", None),
        ("acme", 13, "active", '{"name": "x"}'),
        ("bygg", 12, "detached", '{"name": "x"}'),
    ]
    linked = two_tenants.cli(
        "relink", "--tenant", "acme", "--entity", "customer", "--svenn-id", "13"
    )
    assert linked.returncode == 2 and "linked already" in linked.stderr
    missing = two_tenants.cli(
        "relink", "--tenant", "acme", "--entity", "customer", "--tripletex-id", "999"
    )
    assert missing.returncode == 2 and "no detached customer link" in missing.stderr


def test_G7_confirm_deletes_releases_held_deletions_only_when_some_are_held(two_tenants):
    nothing = two_tenants.cli("confirm-deletes", "--tenant", "acme")
    assert nothing.returncode == 0 and "no deletions are held" in nothing.stdout
    with two_tenants.db() as conn:
        _insert_error(conn, "acme", "MASS_DELETE_HELD", "error", "customer", None, "customer")
    confirmed = two_tenants.cli("confirm-deletes", "--tenant", "acme", "--by", "kari")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "customer (1)" in confirmed.stdout
    two_tenants.cli("confirm-deletes", "--tenant", "acme", "--by", "kari")  # idempotent
    with two_tenants.db() as conn:
        rows = conn.execute(
            "SELECT tenant, action, actor, consumed_by_run FROM sync.approvals"
        ).fetchall()
    assert rows == [("acme", "confirm_deletes", "kari", None)]


def test_tenants_shows_mode_outcome_and_open_errors(two_tenants):
    with two_tenants.db() as conn:
        conn.execute(
            """INSERT INTO sync.runs (tenant, run_id, started_at, outcome)
               VALUES ('acme', 'r1', now(), 'partial')"""
        )
    result = two_tenants.cli("tenants")
    assert result.returncode == 0, result.stderr
    acme = next(line for line in result.stdout.splitlines() if line.startswith("acme"))
    bygg = next(line for line in result.stdout.splitlines() if line.startswith("bygg"))
    assert "active" in acme and "partial" in acme and "1 errors, 0 warnings, 1 info" in acme
    assert "review" in bygg and "never run" in bygg and "1 errors" in bygg


# -- bad input: one line on stderr, exit 2, no traceback --------------------------------------
def _assert_one_clear_line(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("errors", "--tenant", "nope"),
        ("run", "--tenant", "nope"),
        ("plan", "--tenant", "nope"),
        ("relink", "--tenant", "nope", "--entity", "customer", "--svenn-id", "1"),
    ],
)
def test_unknown_tenant_is_one_clear_line(workspace, args):
    workspace.add_offline_tenant("acme")
    _assert_one_clear_line(workspace.cli(*args), "unknown tenant 'nope'", "acme")


def test_missing_tenants_file_is_one_clear_line(workspace):
    _assert_one_clear_line(workspace.cli("tenants"), "tenants file not found")
    elsewhere = workspace.cli("--tenants-file", "/nonexistent/tenants.yaml", "errors")
    _assert_one_clear_line(elsewhere, "/nonexistent/tenants.yaml", "tenants file not found")


def test_invalid_tenants_file_is_one_clear_line_without_the_secret(workspace):
    (workspace.root / "tenants.yaml").write_text(
        "tenants:\n  acme:\n    mode: sometimes\n    svenn: {base_url: 'http://127.0.0.1:9', "
        "api_key: 'TOPSECRET'}\n    tripletex: {base_url: 'http://127.0.0.1:9', "
        "consumer_token: 'c', employee_token: 'e'}\n"
    )
    result = workspace.cli("run", "--tenant", "acme")
    _assert_one_clear_line(result, "acme", "mode")
    assert "TOPSECRET" not in result.stderr + result.stdout


def test_unreadable_tenants_file_is_one_clear_line(workspace):
    (workspace.root / "tenants.yaml").write_text("tenants: [unclosed\n")
    _assert_one_clear_line(workspace.cli("errors"), "invalid YAML")


def test_run_without_tenant_or_all_is_one_clear_line(workspace):
    workspace.add_offline_tenant("acme")
    _assert_one_clear_line(workspace.cli("run"), "--tenant KEY", "--all")


def test_database_locked_by_another_writer_is_one_clear_line(workspace):
    workspace.add_offline_tenant("acme")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(workspace.duckdb_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        for args in (
            ("errors",),
            ("run", "--tenant", "acme"),
            ("confirm-deletes", "--tenant", "acme"),
        ):
            _assert_one_clear_line(
                workspace.cli(*args), "locked by another process", f"process {holder.pid}"
            )
    finally:
        holder.stdin.close()
        holder.wait(10)
