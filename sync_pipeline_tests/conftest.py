"""Session fixtures: both sandbox servers run as child processes on free loopback ports.

Tests that change data register their own company (``sandbox.new_company()``)
so they never see each other's records; the start-up company holds the demo
world and must be treated as read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from sync_pipeline.sandbox.process import SandboxProcess

# Property-based tests (hypothesis, schemathesis) explore new examples on developers'
# machines, and replay the same ones in CI so a submission's result is repeatable.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "tripletex"


@pytest.fixture(scope="session")
def tripletex_sandbox():
    with SandboxProcess.start("tripletex", "--seed", "demo") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def svenn_sandbox():
    with SandboxProcess.start("svenn", "--seed", "demo") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def tripletex_reference_dir() -> Path:
    """The official Tripletex API documents, which are not part of the project."""
    if not (REFERENCE_DIR / "openapi-2.74.00.json").exists():
        pytest.skip(
            f"Tripletex reference documents not found in {REFERENCE_DIR} "
            "(they live in the shared folder beside the repository, not in it)"
        )
    return REFERENCE_DIR


#: The test machines' PostgreSQL (trust auth): a fresh database per session is made from it.
POSTGRES_ADMIN = os.environ.get("SYNC_TEST_POSTGRES", "host=127.0.0.1 port=5432 dbname=test")
#: Set by .ci/run: a missing PostgreSQL fails the tests that need it instead of skipping them.
POSTGRES_REQUIRED = os.environ.get("SYNC_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_url():
    """A libpq URL of a new database ``sync_test_<random>`` on the test PostgreSQL, dropped at
    the end of the session. Skips where none answers (a laptop), fails where CI requires it."""
    import secrets

    try:
        import psycopg2
    except ImportError as exc:  # pragma: no cover - a venv without the package's extras
        _postgres_unavailable(f"psycopg2 is not installed ({exc})")
    admin, user, errors = None, None, []
    for user in ("postgres", "root"):
        try:
            admin = psycopg2.connect(f"{POSTGRES_ADMIN} user={user} connect_timeout=3")
            break
        except psycopg2.OperationalError as exc:
            errors.append(" ".join(str(exc).split()))
    if admin is None:
        _postgres_unavailable(f"no PostgreSQL answers at '{POSTGRES_ADMIN}': {errors[-1]}")
    admin.autocommit = True
    params = admin.get_dsn_parameters()
    name = f"sync_test_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{params['host']}:{params['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _postgres_unavailable(reason: str):
    if POSTGRES_REQUIRED:
        pytest.fail(f"SYNC_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason} (CI sets SYNC_REQUIRE_POSTGRES=1)")
