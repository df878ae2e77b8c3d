"""Session fixtures: both sandbox servers run as child processes on free loopback ports.

Tests that change data register their own company (``sandbox.new_company()``)
so they never see each other's records; the start-up company holds the demo
world and must be treated as read-only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
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


def _postgres_admin():
    """(connection, user) on the test PostgreSQL with autocommit, or a skip/fail."""
    try:
        import psycopg2
    except ImportError as exc:  # pragma: no cover - a venv without the package's extras
        _postgres_unavailable(f"psycopg2 is not installed ({exc})")
    errors = []
    for user in ("postgres", "root"):
        try:
            admin = psycopg2.connect(f"{POSTGRES_ADMIN} user={user} connect_timeout=3")
        except psycopg2.OperationalError as exc:
            errors.append(" ".join(str(exc).split()))
            continue
        admin.autocommit = True
        return admin, user
    _postgres_unavailable(f"no PostgreSQL answers at '{POSTGRES_ADMIN}': {errors[-1]}")


class LakeFactory:
    """Fresh DuckLakes for one session: each a new catalog database cloned from a migrated
    template (migrating a lake costs seconds; cloning a catalog a fraction of one)."""

    def __init__(self, admin, user: str, root: Path) -> None:
        import secrets

        self.admin, self.user, self.root = admin, user, root
        params = admin.get_dsn_parameters()
        self.server = f"host={params['host']} port={params['port']} user={user}"
        self.prefix = f"sync_lake_{secrets.token_hex(3)}"
        self.databases: list[str] = []
        self.template = self._create("template", template=None)
        from sync_pipeline.resources import backends

        with backends.open_lake(config=self.config(self.template)):
            pass  # migrated once
        backends.forget_lake()  # a template must have no session

    def _create(self, name: str, template: str | None) -> str:
        database = f"{self.prefix}_{name}"
        with self.admin.cursor() as cur:
            clone = f' TEMPLATE "{template}"' if template else ""
            cur.execute(f'CREATE DATABASE "{database}"{clone}')
        self.databases.append(database)
        return database

    def config(self, database: str):
        from sync_pipeline.resources.backends import LakeConfig

        return LakeConfig(f"{self.server} dbname={database}", str(self.root / "data") + "/")

    def new(self, name: str):
        """A migrated, empty lake of its own (``name``: a readable hint, made unique)."""
        hint = re.sub(r"\W+", "_", name)[-40:].strip("_") or "t"
        return self.config(self._create(f"{len(self.databases)}_{hint}", self.template))

    def drop(self, config) -> None:
        from sync_pipeline.resources import backends

        backends.forget_lake()
        database = config.catalog.rsplit("dbname=", 1)[1]
        with self.admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def close(self) -> None:
        with self.admin.cursor() as cur:
            for database in self.databases:
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def lakes(tmp_path_factory):
    """Makes DuckLakes with their catalog on the test PostgreSQL; skips (or fails under
    ``SYNC_REQUIRE_POSTGRES=1``) where none answers."""
    admin, user = _postgres_admin()
    factory = LakeFactory(admin, user, tmp_path_factory.mktemp("lakes"))
    try:
        yield factory
    finally:
        factory.close()


def use_lake(monkeypatch, config) -> None:
    """Point ``SYNC_STORE`` (this process and the children it starts) at a lake."""
    from sync_pipeline.resources import backends

    monkeypatch.setenv(backends.STORE_ENV, "ducklake")
    monkeypatch.setenv(backends.CATALOG_ENV, config.catalog)
    monkeypatch.setenv(backends.DATA_PATH_ENV, config.data_path)


#: The state-store backends the rule, apply and crash tests run on: ``duckdb`` by default,
#: plus ``ducklake`` for the tests marked ``lake`` (a sample of each family, so CI runs it
#: on DuckLake). ``SYNC_TEST_STORES=duckdb,ducklake`` runs all of them on DuckLake too:
#: every statement there is a round trip to the catalog, so the 160 lake variants of
#: rules/ and apply/ take about 6 min with ``-n 2`` on 2 cores.
TEST_STORES = [
    s.strip() for s in os.environ.get("SYNC_TEST_STORES", "duckdb").split(",") if s.strip()
]


def pytest_generate_tests(metafunc) -> None:
    """Each test that runs on a state store gets one variant per backend: ``TEST_STORES``,
    and ``ducklake`` also for a test marked ``lake``."""
    if "store_backend" not in metafunc.fixturenames:
        return
    stores = list(TEST_STORES)
    if metafunc.definition.get_closest_marker("lake") and "ducklake" not in stores:
        stores.append("ducklake")
    metafunc.parametrize("store_backend", stores, indirect=True)


@pytest.fixture(scope="module")
def store_backend(request) -> str:
    """The backend name a test runs on (parametrised by :func:`pytest_generate_tests`);
    module-scoped so a module's shared world is built once per backend."""
    return request.param


@contextmanager
def store_of_its_own(request, store: str, name: str):
    """``SYNC_STORE`` pointing at a fresh, empty state store of ``store`` for the block (a
    lake of its own, dropped after it; on ``duckdb`` each world's own file is already
    fresh). For worlds built beside the test's own: a module's reference run, or one
    example of a property test."""
    from sync_pipeline.resources import backends

    with pytest.MonkeyPatch.context() as patch:
        if store == "duckdb":
            patch.delenv(backends.STORE_ENV, raising=False)
            yield
            return
        factory = request.getfixturevalue("lakes")
        config = factory.new(name)
        use_lake(patch, config)
        try:
            yield
        finally:
            factory.drop(config)


@pytest.fixture(scope="module")
def module_state_store(request, store_backend: str):
    """The store of a module's shared world, which its tests then read: a test asking for
    this (through the world's fixture) runs on the module's store, not on one of its own."""
    with store_of_its_own(request, store_backend, request.module.__name__.rsplit(".", 1)[-1]):
        yield store_backend


@pytest.fixture
def state_store(request, store_backend: str) -> Iterator[str]:
    """The backend a rule, apply or crash test runs on (``SYNC_STORE``): the same test on
    each, with a lake of its own on ``ducklake`` (or its module's, see
    :func:`module_state_store`)."""
    if "module_state_store" in request.fixturenames:
        yield request.getfixturevalue("module_state_store")
        return
    with store_of_its_own(request, store_backend, request.node.name):
        yield store_backend


def _postgres_unavailable(reason: str):
    if POSTGRES_REQUIRED:
        pytest.fail(f"SYNC_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason} (CI sets SYNC_REQUIRE_POSTGRES=1)")
