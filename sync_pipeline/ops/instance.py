"""The persistent Dagster instance the CLI, the schedules and the UI share.

``DAGSTER_HOME`` (default ``data/dagster_home``) gets a ``dagster.yaml`` on first use: the
embedded SQLite instance, or PostgreSQL when ``SYNC_DAGSTER_POSTGRES_URL`` is set. Before a
run, runs whose process is gone are marked failed and a tenant another live run holds is
refused (G13).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from sync_pipeline import lease
from sync_pipeline.failures import one_line
from sync_pipeline.ops import OperatorError, TenantBusy
from sync_pipeline.ops.store import open_db

DEFAULT_DAGSTER_HOME = "data/dagster_home"
#: A libpq URL; when set, the Dagster instance stores runs, events and schedules there.
POSTGRES_URL_ENV = "SYNC_DAGSTER_POSTGRES_URL"

#: The instance configuration written into a new ``DAGSTER_HOME``: one run per tenant at a
#: time (run queue, by partition = tenant, whoever launched the run), one step at a time in
#: any pool a step joins (no asset joins one today: runs share the DuckDB file through
#: short connections that wait with backoff), run retries for scheduled runs, no
#: telemetry (loopback only), and no first-visit newsletter dialog in the UI (``nux``).
DAGSTER_YAML = """\
# Written by sync-pipeline on first use; edit freely.
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "dagster/partition"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1
run_retries:
  enabled: true
  max_retries: 0
run_monitoring:
  enabled: true
telemetry:
  enabled: false
nux:
  enabled: false
"""

#: The same instance with its run, event-log and schedule storage on PostgreSQL, written when
#: ``SYNC_DAGSTER_POSTGRES_URL`` is set. The file names the variable, never its value (the
#: password stays out of files); ``sync_pipeline.dagster_storage`` pins the psycopg2 driver.
#: ``deploy/dagster.yaml`` is this file, documented for production.
DAGSTER_YAML_POSTGRES = (
    DAGSTER_YAML
    + """\
storage:
  custom:
    module: sync_pipeline.dagster_storage
    class: PostgresStorage
    config:
      postgres_url:
        env: SYNC_DAGSTER_POSTGRES_URL
"""
)
_NUX = "nux:\n  enabled: false\n"
#: Files earlier versions wrote (before ``nux``): still ours, so they follow the setting.
_EARLIER_DAGSTER_YAMLS = (
    DAGSTER_YAML.replace(_NUX, ""),
    DAGSTER_YAML_POSTGRES.replace(_NUX, ""),
)


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` (default ``data/dagster_home``) with its ``dagster.yaml``: the embedded
    SQLite instance, or PostgreSQL when ``SYNC_DAGSTER_POSTGRES_URL`` is set. A file we wrote
    and nobody edited follows the setting; an edited one is kept, but must agree with it."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    on_postgres = bool(os.environ.get(POSTGRES_URL_ENV))
    wanted = DAGSTER_YAML_POSTGRES if on_postgres else DAGSTER_YAML
    current = config.read_text(encoding="utf-8") if config.exists() else None
    ours = (DAGSTER_YAML, DAGSTER_YAML_POSTGRES, *_EARLIER_DAGSTER_YAMLS)
    if current is None or (current in ours and current != wanted):
        staged = config.with_name(f".dagster.yaml.{os.getpid()}")
        staged.write_text(wanted, encoding="utf-8")
        staged.replace(config)  # atomic: a concurrent process reads the old or the new file
    elif current != wanted and on_postgres != (POSTGRES_URL_ENV in current):
        raise OperatorError(
            f"{config}: this edited instance file "
            + ("keeps runs in SQLite although" if on_postgres else "needs")
            + f" {POSTGRES_URL_ENV}"
            + (" is set" if on_postgres else ", which is not set")
            + "; see deploy/dagster.yaml"
        )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def dagster_instance():
    """The persistent instance. Its SQLite storages are created under a file lock: two
    processes creating them at once leave two schema versions behind (a broken instance).
    A PostgreSQL instance that does not answer is one line, without the URL's password."""
    from dagster import DagsterInstance

    home = dagster_home()
    url = os.environ.get(POSTGRES_URL_ENV)
    with open(home / ".init.lock", "w") as lock, _quiet_root_logger(bool(url)):
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
            instance.get_run_records(limit=1)  # run storage
            instance.get_dynamic_partitions("tenants")  # event log storage (index)
            instance.all_instigator_state()  # schedule storage
        except Exception as exc:
            if not url or not _is_instance_db_error(exc):
                raise
            raise OperatorError(_instance_db_error(url, exc)) from None
    return instance


@contextmanager
def _quiet_root_logger(quiet: bool) -> Iterator[None]:
    """dagster-postgres logs every connection retry on the root logger; the one line after
    the last retry says it all."""
    root = logging.getLogger()
    level = root.level
    if quiet:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _is_instance_db_error(exc: BaseException) -> bool:
    """A failure to reach or use the instance's PostgreSQL (or a URL that is not one)."""
    from dagster_postgres.utils import DagsterPostgresException
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | DagsterPostgresException | ValueError)


def _instance_db_error(url: str, exc: BaseException) -> str:
    """Why the instance's PostgreSQL cannot be used, without the URL's password."""
    from sync_pipeline.dagster_storage import redacted

    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    reason = one_line(str(getattr(cause, "orig", None) or cause)) or type(cause).__name__
    password = urlsplit(url).password
    if password:
        reason = reason.replace(password, "***")
    return f"{POSTGRES_URL_ENV}: the Dagster instance's database {redacted(url)} cannot be used ({reason})"


def refuse_if_busy(instance, tenant: str) -> None:
    """Before a run: mark failed the runs whose process is gone, then refuse while another
    live run holds the tenant's lease (the run's own first step would refuse it too)."""
    with open_db() as conn:
        lease.fail_orphaned_runs(instance, conn)
        held = lease.live_holder(conn, tenant, lease.finished_in(instance))
    if held is not None:
        raise TenantBusy(f"{lease.LeaseRefused(held)}; try again when it has finished")
