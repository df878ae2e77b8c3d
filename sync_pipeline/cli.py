"""``sync-pipeline``: the operator's command line.

``run`` and ``plan`` execute the same Dagster jobs as the UI and the schedules,
recorded in the persistent Dagster instance (``DAGSTER_HOME``, default
``data/dagster_home``) so every run shows in the UI. The other commands read or
record operator decisions in DuckDB. Any problem an operator can fix (unknown
tenant, bad tenants file, database locked, the tenant being synced by another run,
G13) is one line on stderr and exit code 2; a failed run is exit code 1 with its reason.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import getpass
import io
import json
import logging
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from sync_pipeline import lease
from sync_pipeline.failures import error_text as _error_text
from sync_pipeline.failures import failure_reason, one_line
from sync_pipeline.resources.storage import duckdb_path, migrate
from sync_pipeline.tenants import TENANTS_FILE_ENV, TenantConfig, TenantConfigError, load_tenants

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_DAGSTER_HOME = "data/dagster_home"
#: A libpq URL; when set, the Dagster instance stores runs, events and schedules there.
POSTGRES_URL_ENV = "SYNC_DAGSTER_POSTGRES_URL"
#: How long a command waits for another process to release the DuckDB file.
LOCK_WAIT_S = float(os.environ.get("SYNC_DUCKDB_LOCK_WAIT", "10"))
#: After a run: other tenants' runs hold the file only for short units of work.
SUMMARY_LOCK_WAIT_S = 120.0

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


class CliError(Exception):
    """A problem the operator can fix; shown as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


# -- where things are -------------------------------------------------------------------------
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
        raise CliError(
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
            raise CliError(_instance_db_error(url, exc)) from None
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


def _lock_holder(message: str) -> str:
    pid = re.search(r"PID (\d+)", message)
    return f" (held by process {pid.group(1)})" if pid else ""


@contextmanager
def open_db(wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, migrated; waits a while for another writer, then says so."""
    path = duckdb_path()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            conn = duckdb.connect(path)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise CliError(f"{path}: cannot open the sync database ({exc})") from None
            if time.monotonic() >= deadline:
                raise CliError(
                    f"{path}: the sync database is locked by another process"
                    f"{_lock_holder(str(exc))}; try again when it has finished"
                ) from None
            time.sleep(0.1)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cur = conn.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _tenants(args: argparse.Namespace) -> dict[str, TenantConfig]:
    try:
        return load_tenants()
    except TenantConfigError as exc:
        raise CliError(str(exc)) from None


def _selected(args: argparse.Namespace, tenants: dict[str, TenantConfig]) -> list[str]:
    """The tenants a command applies to: ``--tenant`` (checked against the file) or all."""
    key = getattr(args, "tenant", None)
    if key is None:
        return sorted(tenants)
    if key not in tenants:
        known = ", ".join(sorted(tenants)) or "none"
        raise CliError(f"unknown tenant '{key}' (known: {known})")
    return [key]


def _actor(args: argparse.Namespace) -> str:
    if args.by:
        return args.by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        return "unknown"


# -- output -----------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    # Records' text is data: a line break or a terminal escape (colours, OSC 8 links) in a
    # name must not reshape the table or the operator's terminal.
    return _CONTROL.sub(" ", str(value))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def format_table(rows: Sequence[dict], columns: Sequence[str], max_width: int = 60) -> str:
    """A plain aligned text table (no colours, safe in logs and CI)."""
    cells = [[_cell(r.get(c))[:max_width] for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(s.rstrip() for s in out)


def _write(rows: Sequence[dict], columns: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{c: _csv_value(r.get(c)) for c in columns} for r in rows])
        sys.stdout.write(buf.getvalue())
    else:
        print(format_table(rows, columns) if rows else "(none)")


#: What a spreadsheet reads as the start of a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    """A CSV cell; text from tenants' records that a spreadsheet would run as a formula
    (``=HYPERLINK(…)``, ``@SUM(…)``) gets a leading ``'`` so it opens as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


# -- run / plan -------------------------------------------------------------------------------
class _ProgressHandler(logging.Handler):
    """Turns Dagster's event stream into one line per finished step."""

    def __init__(self, stream):
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.rows: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        step = event.step_key or ""
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            count = mat.metadata.get("dagster/row_count") or mat.metadata.get("dagster_row_count")
            label = mat.asset_key.to_user_string()
            self.rows.setdefault(step, []).append(
                f"{label} {count.value} rows" if count is not None else label
            )
        elif kind == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            done = "; ".join(self.rows.pop(step, [])) or ""
            self._line(f"  ok      {step:<44} {seconds:6.1f} s  {done}")
        elif kind == "STEP_FAILURE":
            reason = _error_text(event.event_specific_data.error)
            self._line(f"  FAILED  {step:<44} {reason}")
        elif kind == "STEP_UP_FOR_RETRY":
            self._line(f"  retry   {step}")
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = evaluation.asset_check_key
                self._line(f"  check   {key.asset_key.to_user_string()}:{key.name} did not pass")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _progress_logger_def():
    from dagster import logger

    @logger(description="One line per finished step on stdout.")
    def progress(_init_context):
        log = logging.getLogger("sync_pipeline.cli.progress")
        log.handlers = [_ProgressHandler(sys.stdout)]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log

    return progress


class TenantBusy(CliError):
    """Another live run syncs the tenant (G13); exit code 2, one line."""


def _refuse_if_busy(instance, tenant: str) -> None:
    """Before a run: mark failed the runs whose process is gone, then refuse while another
    live run holds the tenant's lease (the run's own first step would refuse it too)."""
    with open_db() as conn:
        lease.fail_orphaned_runs(instance, conn)
        held = lease.live_holder(conn, tenant, lease.finished_in(instance))
    if held is not None:
        raise TenantBusy(f"{lease.LeaseRefused(held)}; try again when it has finished")


def execute(job_name: str, tenant: str, *, full: bool, origin: str = "cli"):
    """Run one job for one tenant in this process, in the persistent instance, with progress."""
    from sync_pipeline.definitions import defs
    from sync_pipeline.schedules import run_tags
    from sync_pipeline.sensors import ensure_tenant_partitions

    instance = dagster_instance()
    ensure_tenant_partitions(instance, [tenant])
    _refuse_if_busy(instance, tenant)
    job = defs.resolve_job_def(job_name).with_logger_defs({"progress": _progress_logger_def()})
    tags = {
        **run_tags(tenant, full=full, origin=origin),
        lease.PID_TAG: str(os.getpid()),
        lease.HOST_TAG: socket.gethostname(),
    }
    try:
        return job.execute_in_process(
            instance=instance,
            partition_key=tenant,
            tags=tags,
            run_config={"loggers": {"progress": {}}},
            raise_on_error=False,
        )
    finally:  # whatever ended the run (Ctrl-C too), this process holds the tenant no more
        with suppress(CliError), open_db(SUMMARY_LOCK_WAIT_S) as conn:
            lease.release_holder(conn, tenant, lease.holder_id())


def _refusal(tenant: str, run_id: str) -> str | None:
    """The reason a run was refused at its first step (G13), or None."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        rows = _rows(
            conn,
            "SELECT reason FROM sync.runs WHERE tenant = ? AND run_id = ? AND outcome = 'refused'",
            [tenant, run_id],
        )
    return rows[0]["reason"] if rows else None


def _failure_reason(result) -> str:
    return failure_reason(result.all_events)


def _check_db_available() -> None:
    with open_db():
        pass


def _run_summary(tenant: str, run_id: str) -> tuple[list[dict], dict | None, dict]:
    """Per-entity counts of the run's operations and errors, its sync.runs row, and how many
    planned operations were not applied: ``review`` (G9), ``held`` (G7)
    and ``held_creates`` (G12)."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        run = _rows(
            conn, "SELECT * FROM sync.runs WHERE tenant = ? AND run_id = ?", [tenant, run_id]
        )
        started = _rows(
            conn,
            "SELECT min(started_at) AS t FROM sync.operations WHERE tenant = ? AND run_id = ?",
            [tenant, run_id],
        )[0]["t"]
        since = run[0]["started_at"] if run else started
        ops = _rows(
            conn,
            """
            SELECT entity,
              count(*) FILTER (WHERE operation = 'link' AND state = 'done') AS linked,
              count(*) FILTER (WHERE operation = 'create' AND state = 'done') AS created,
              count(*) FILTER (WHERE operation IN ('update', 'set_number') AND state = 'done')
                AS updated,
              count(*) FILTER (WHERE operation IN ('complete', 'detach', 'delete')
                AND state = 'done') AS "completed/detached",
              count(*) FILTER (WHERE state = 'failed') AS failed
            FROM sync.operations WHERE tenant = ? AND run_id = ? GROUP BY entity
            """,
            [tenant, run_id],
        )
        errs = (
            _rows(
                conn,
                """
                SELECT entity,
                  count(*) FILTER (WHERE first_seen_at >= ?) AS errors_opened,
                  count(*) FILTER (WHERE resolved_at >= ?) AS errors_resolved
                FROM sync.errors WHERE tenant = ? GROUP BY entity
                """,
                [since, since, tenant],
            )
            if since is not None
            else []
        )
        not_applied = _rows(
            conn,
            """SELECT count(*) FILTER (WHERE held_reason = 'review') AS review,
                      count(*) FILTER (WHERE held_reason NOT IN ('review', 'mass_create'))
                        AS held,
                      count(*) FILTER (WHERE held_reason = 'mass_create') AS held_creates
               FROM sync.plan WHERE tenant = ? AND run_id = ? AND NOT apply""",
            [tenant, run_id],
        )[0]
    by_entity: dict[str, dict] = {}
    for row in [*ops, *errs]:
        entity = row["entity"] or "-"
        by_entity.setdefault(entity, {"tenant": tenant, "entity": entity}).update(
            {k: v for k, v in row.items() if k != "entity"}
        )
    order = {"employee": 0, "customer": 1, "project": 2}
    rows = sorted(by_entity.values(), key=lambda r: (order.get(r["entity"], 9), r["entity"]))
    for row in rows:
        for col in SUMMARY_COLUMNS[2:]:
            row.setdefault(col, 0)
    return rows, (run[0] if run else None), not_applied


SUMMARY_COLUMNS = (
    "tenant",
    "entity",
    "linked",
    "created",
    "updated",
    "completed/detached",
    "failed",
    "errors_opened",
    "errors_resolved",
)


def _requests_text(requests: Any) -> str:
    """``{"svenn": {"extract": 3, "apply": 2}, …}`` → ``svenn 5 (extract 3, apply 2), …``."""
    if isinstance(requests, str):
        try:
            requests = json.loads(requests)
        except ValueError:
            return requests
    if not isinstance(requests, dict):
        return "" if requests is None else str(requests)
    parts = []
    for system, value in requests.items():
        if isinstance(value, dict):
            detail = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(
                f"{system} {sum(v for v in value.values() if isinstance(v, int))} ({detail})"
            )
        else:
            parts.append(f"{system} {value}")
    return ", ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    if not args.all and not args.tenant:
        raise CliError("name a tenant with --tenant KEY, or sync every tenant with --all")
    keys = _selected(args, tenants)
    _check_db_available()
    summaries: list[dict] = []
    failures: list[str] = []
    refused: list[str] = []
    notes: list[str] = []
    for key in keys:
        print(f"sync {key} ({'full' if args.full else 'incremental'} extract)", flush=True)
        try:
            result = execute("sync_job", key, full=args.full)
        except TenantBusy as busy:
            refused.append(str(busy))
            continue
        if not result.success:
            busy = _refusal(key, result.run_id)  # G13: another run holds the tenant
            moved = None if busy else binding_refusal(result)  # G11: another company
            if busy:
                refused.append(f"tenant '{key}' refused: {busy}")
            elif moved:
                refused.append(moved)
            else:
                failures.append(f"{key}: {_failure_reason(result)}")
                notes += _record_failed_run(key)
            continue
        rows, run, not_applied = _run_summary(key, result.run_id)
        summaries += rows
        outcome = (run or {}).get("outcome") or "success"
        details = [f"outcome {outcome}", f"run {result.run_id}"]
        if run and run.get("requests") is not None:
            details.append(f"requests: {_requests_text(run['requests'])}")
        print(f"{key}: " + "; ".join(details))
        if not_applied["held"]:
            print(
                f"{key}: {not_applied['held']} deletions held by the mass-deletion guard (G7); "
                f"release them with `sync-pipeline confirm-deletes --tenant {key}`"
            )
        if not_applied["held_creates"]:
            print(
                f"{key}: {not_applied['held_creates']} creates held by the mass-create guard "
                f"(G12); release them with `sync-pipeline confirm-creates --tenant {key}`"
            )
        if not_applied["review"]:
            print(
                f"{key}: review mode, {not_applied['review']} planned operations not applied "
                f"(inspect with `sync-pipeline plan --tenant {key}`, go live with "
                f"`sync-pipeline approve --tenant {key}`)"
            )
        if outcome == "failed":
            failures.append(f"{key}: {(run or {}).get('reason') or 'the run reported failure'}")
    if summaries:
        print()
        print(format_table(summaries, SUMMARY_COLUMNS))
    for failure in failures:
        print(f"sync-pipeline: run failed: {failure}", file=sys.stderr)
    for refusal in refused:
        print(f"sync-pipeline: {refusal}", file=sys.stderr)
    for note in notes:
        print(f"sync-pipeline: {note}", file=sys.stderr)
    return EXIT_USAGE if refused else EXIT_FAILED if failures else EXIT_OK


def _record_failed_run(tenant: str) -> list[str]:
    """A run that failed before its apply step wrote no ``sync.runs`` row: write it now
    (outcome failed, the reason) and refresh the tenant's Parquet exports. If the database
    stays locked, the tenant's next run records it; returns that note, if any."""
    from sync_pipeline.assets.apply import runs as errlog  # runs also has the exports

    try:
        with open_db() as conn:
            errlog.record_failed_runs(conn, dagster_instance(), tenant)
            errlog.export_parquet(conn, tenant, errlog.export_dir())
    except CliError as exc:
        return [f"{tenant}: the failed run is recorded in sync.runs by the next run ({exc})"]
    return []


PLAN_COLUMNS = (
    "seq",
    "entity",
    "target",
    "operation",
    "label",
    "fields",
    "rule_ids",
    "apply",
    "held_reason",
)


def cmd_plan(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    _check_db_available()
    print(f"plan {key} (nothing is written to Svenn or Tripletex)", flush=True)
    result = execute("plan_job", key, full=args.full)
    refusal = None if result.success else binding_refusal(result)
    if refusal:
        raise CliError(refusal)
    if not result.success:
        reason = _refusal(key, result.run_id)
        if reason:
            raise TenantBusy(f"tenant '{key}' refused: {reason}")
        print(f"sync-pipeline: plan failed: {key}: {_failure_reason(result)}", file=sys.stderr)
        return EXIT_FAILED
    show_plan(key, result.run_id, limit=args.limit)
    return EXIT_OK


def show_plan(tenant: str, run_id: str, limit: int = 50) -> None:
    """Print the plan of one run: totals, the first operations, and the findings by code."""
    with open_db(SUMMARY_LOCK_WAIT_S) as conn:
        totals = _rows(
            conn,
            """SELECT entity, target, operation, count(*) AS operations
               FROM sync.plan WHERE tenant = ? AND run_id = ?
               GROUP BY ALL ORDER BY min(seq)""",
            [tenant, run_id],
        )
        ops = _rows(
            conn,
            f"""SELECT {", ".join(PLAN_COLUMNS)} FROM sync.plan
                WHERE tenant = ? AND run_id = ? ORDER BY seq LIMIT ?""",
            [tenant, run_id, limit],
        )
        findings = _rows(
            conn,
            """SELECT code, severity, rule_id, count(*) AS records, any_value(message) AS message
               FROM sync.findings WHERE tenant = ? AND run_id = ?
               GROUP BY code, severity, rule_id ORDER BY records DESC, code""",
            [tenant, run_id],
        )
    total = sum(r["operations"] for r in totals)
    print(f"\nplan of {tenant}: {total} operations (run {run_id})")
    if totals:
        print(format_table(totals, ("entity", "target", "operation", "operations")))
        print(f"\nfirst {min(limit, total)} operations:")
        print(format_table(ops, PLAN_COLUMNS, max_width=40))
    print(f"\nfindings: {sum(r['records'] for r in findings)}")
    if findings:
        print(format_table(findings, ("code", "severity", "rule_id", "records", "message")))


# -- error log, tenants -----------------------------------------------------------------------
ERROR_COLUMNS = (
    "tenant",
    "severity",
    "code",
    "entity",
    "svenn_id",
    "tripletex_id",
    "record_label",
    "message",
    "first_seen_at",
    "last_seen_at",
)


def cmd_errors(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    keys = _selected(args, tenants)
    where = "tenant IN (SELECT unnest(?))" + ("" if args.history else " AND resolved_at IS NULL")
    with open_db() as conn:
        rows = _rows(
            conn,
            f"""SELECT * FROM sync.errors WHERE {where}
                ORDER BY tenant, CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                         code, entity, record_label""",
            [keys],
        )
    columns = list(ERROR_COLUMNS)
    if args.history:
        columns.append("resolved_at")
    if args.format != "table":
        columns += ["details", "run_id"]
    for row in rows:
        if isinstance(row.get("details"), str) and args.format == "json":
            with suppress(ValueError):
                row["details"] = json.loads(row["details"])
    _write(rows, columns, args.format)
    return EXIT_OK


def _last_runs(keys: Sequence[str]) -> dict[str, dict]:
    """Per tenant: the newest sync run in the Dagster instance and the failing streak."""
    from dagster import RunsFilter

    from sync_pipeline.jobs import sync_job
    from sync_pipeline.schedules import PARTITION_TAG, failing_streak

    instance = dagster_instance()
    out = {}
    for key in keys:
        records = instance.get_run_records(
            RunsFilter(job_name=sync_job.name, tags={PARTITION_TAG: key}), limit=1
        )
        record = records[0] if records else None
        out[key] = {
            "run_id": record.dagster_run.run_id if record else None,
            "status": record.dagster_run.status.value.lower() if record else None,
            "at": datetime.fromtimestamp(
                record.start_time or record.create_timestamp.timestamp(), UTC
            )
            if record
            else None,
            "streak": failing_streak(instance, key),
        }
    return out


def cmd_tenants(args: argparse.Namespace) -> int:
    from sync_pipeline.schedules import FAILING_STREAK

    tenants = _tenants(args)
    keys = sorted(tenants)
    with open_db() as conn:
        runs = {
            r["tenant"]: r
            for r in _rows(
                conn,
                """SELECT tenant, run_id, outcome, started_at FROM sync.runs
                   QUALIFY row_number() OVER (PARTITION BY tenant ORDER BY started_at DESC) = 1""",
            )
        }
        errors = {
            r["tenant"]: r
            for r in _rows(
                conn,
                """SELECT tenant, count(*) FILTER (WHERE severity = 'error') AS e,
                          count(*) FILTER (WHERE severity = 'warning') AS w,
                          count(*) FILTER (WHERE severity = 'info') AS i
                   FROM sync.errors WHERE resolved_at IS NULL GROUP BY tenant""",
            )
        }
        approved = {
            r["tenant"]
            for r in _rows(
                conn, "SELECT DISTINCT tenant FROM sync.approvals WHERE action = 'go_live'"
            )
        }
        leases = lease.all_leases(conn)
    dagster_runs = _last_runs(keys)
    rows = []
    for key in keys:
        mode = tenants[key].mode
        if mode == "review" and key in approved:
            mode = "review→active (approved)"
        last = dagster_runs[key]
        db_run = runs.get(key)
        if last["run_id"] and db_run and db_run["run_id"] == last["run_id"]:
            outcome = db_run["outcome"]
        else:
            outcome = {"failure": "failed"}.get(last["status"] or "", last["status"])
            if outcome is None and db_run:
                outcome = db_run["outcome"]
        at = last["at"] or (db_run or {}).get("started_at")
        errs = errors.get(key, {})
        streak = last["streak"]
        rows.append(
            {
                "tenant": key,
                "mode": mode,
                "last_run": at,
                "outcome": outcome or "never run",
                "open_errors": f"{errs.get('e', 0)} errors, {errs.get('w', 0)} warnings, "
                f"{errs.get('i', 0)} info",
                "health": f"FAILING ({streak} runs in a row)" if streak >= FAILING_STREAK else "ok",
                "lease": lease.describe_for_tenants(leases.get(key)),
            }
        )
    print(
        format_table(
            rows,
            ("tenant", "mode", "last_run", "outcome", "open_errors", "health", "lease"),
            max_width=90,
        )
    )
    return EXIT_OK


# -- operator decisions -----------------------------------------------------------------------
def cmd_approve(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    if tenants[key].mode != "review":
        print(f"tenant '{key}' is in active mode already; nothing to approve")
        return EXIT_OK
    actor = _actor(args)
    with open_db() as conn:
        earlier = _rows(
            conn,
            """SELECT actor, approved_at FROM sync.approvals
               WHERE tenant = ? AND action = 'go_live' ORDER BY approved_at LIMIT 1""",
            [key],
        )
        if earlier:
            print(
                f"tenant '{key}' went live already: approved by {earlier[0]['actor']} "
                f"at {_cell(earlier[0]['approved_at'])}"
            )
            return EXIT_OK
    binding = bind_at_approval(key, tenants[key], actor)  # G11; refuses a changed company
    with open_db() as conn:
        conn.execute(
            "INSERT INTO sync.approvals VALUES (?, 'go_live', ?, now(), NULL)", [key, actor]
        )
    print(f"tenant '{key}' approved for go-live by {actor}; the next run applies its plan (G9)")
    print(binding)
    return EXIT_OK


def _confirm_held(args: argparse.Namespace, *, code: str, action: str, what: str, rule: str) -> int:
    """Release what a mass guard holds (G7 deletions, G12 creates): one approval, which the
    next applying run uses up; nothing is recorded when nothing is held."""
    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    actor = _actor(args)
    with open_db() as conn:
        held = _rows(
            conn,
            # how many the guard holds, as its finding counted them (``details.<what>``)
            """SELECT entity, coalesce(any_value(details->>('$.' || ?)),
                                       CAST(count(*) AS VARCHAR)) AS n
               FROM sync.errors WHERE tenant = ? AND code = ? AND resolved_at IS NULL
               GROUP BY entity ORDER BY entity""",
            [what, key, code],
        )
        if not held:
            print(f"tenant '{key}': no {what} are held; nothing to confirm")
            return EXIT_OK
        pending = _rows(
            conn,
            """SELECT actor FROM sync.approvals WHERE tenant = ? AND action = ?
               AND consumed_by_run IS NULL""",
            [key, action],
        )
        if not pending:
            conn.execute(
                "INSERT INTO sync.approvals VALUES (?, ?, ?, now(), NULL)", [key, action, actor]
            )
    entities = ", ".join(f"{r['entity']} ({r['n']})" for r in held)
    print(
        f"tenant '{key}': held {what} of {entities} confirmed by {actor}; "
        f"the next run applies them ({rule})"
    )
    return EXIT_OK


def cmd_confirm_deletes(args: argparse.Namespace) -> int:
    return _confirm_held(
        args, code="MASS_DELETE_HELD", action="confirm_deletes", what="deletions", rule="G7"
    )


def cmd_confirm_creates(args: argparse.Namespace) -> int:
    return _confirm_held(
        args, code="MASS_CREATE_HELD", action="confirm_creates", what="creates", rule="G12"
    )


def cmd_relink(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    side, record_id = (
        ("svenn", args.svenn_id) if args.svenn_id else ("tripletex", args.tripletex_id)
    )
    with open_db() as conn:
        conn.execute("BEGIN TRANSACTION")
        links = _rows(
            conn,
            f"""SELECT svenn_id, tripletex_id, state FROM sync.links
                WHERE tenant = ? AND entity = ? AND {side}_id = ?""",
            [key, args.entity, record_id],
        )
        detached = [link for link in links if link["state"] == "detached"]
        if any(link["state"] == "active" for link in links):
            conn.execute("ROLLBACK")
            raise CliError(f"the {args.entity} with {side} id {record_id} is linked already")
        if not detached:
            conn.execute("ROLLBACK")
            raise CliError(
                f"tenant '{key}': no detached {args.entity} link with {side} id {record_id}"
            )
        link = detached[0]
        clash = _rows(
            conn,
            """SELECT 1 FROM sync.links WHERE tenant = ? AND entity = ? AND state = 'active'
               AND (svenn_id = ? OR tripletex_id = ?)""",
            [key, args.entity, link["svenn_id"], link["tripletex_id"]],
        )
        if clash:
            conn.execute("ROLLBACK")
            raise CliError(
                f"cannot re-attach: the other record is linked to another {args.entity} already"
            )
        conn.execute(
            f"""UPDATE sync.links SET state = 'active', base = NULL
                WHERE tenant = ? AND entity = ? AND {side}_id = ? AND state = 'detached'""",
            [key, args.entity, record_id],
        )
        conn.execute("COMMIT")
    print(
        f"tenant '{key}': {args.entity} link Svenn {link['svenn_id']} ⇄ Tripletex "
        f"{link['tripletex_id']} re-attached; the next run merges both records again (C6)"
    )
    return EXIT_OK


# -- G13: links doubled by overlapping runs ----------------------------------------------------
def g13_duplicate_links_sql() -> str:
    """Active links sharing a Svenn or Tripletex id with another active link of their entity,
    and whether their records' keys still match in staging (both live, equal G3 key; for
    employees also the same e-mail)."""
    from sync_pipeline.assets.rules.eligibility import key_sql
    from sync_pipeline.model import ENTITIES, staging_table

    def match(entity: str) -> str:
        keys = f"{key_sql(entity, 's.number')} = {key_sql(entity, 't.number')}"  # type: ignore[arg-type]
        if entity == "employee":
            keys += " OR nullif(lower(trim(s.email)), '') = lower(trim(t.email))"
        return f"coalesce(NOT s.deleted AND NOT t.deleted AND ({keys}), false)"

    per_entity = " UNION ALL ".join(
        f"""SELECT d.rid, {match(e)} AS keys_match FROM dup d
            LEFT JOIN {staging_table("svenn", e)} s ON s.tenant = $tenant AND s.id = d.svenn_id
            LEFT JOIN {staging_table("tripletex", e)} t
              ON t.tenant = $tenant AND t.id = d.tripletex_id
            WHERE d.entity = '{e}'"""
        for e in ENTITIES
    )
    return f"""
    WITH active AS (
      SELECT rowid AS rid, entity, svenn_id, tripletex_id, linked_at, last_synced_at
      FROM sync.links WHERE tenant = $tenant AND state = 'active'
        AND NOT list_contains($copies, rowid)   -- exact copies of a pair count once
    ),
    dup AS (
      SELECT * FROM active a WHERE EXISTS (
        SELECT 1 FROM active b WHERE b.entity = a.entity AND b.rid <> a.rid
          AND (b.svenn_id = a.svenn_id OR b.tripletex_id = a.tripletex_id))
    )
    SELECT d.*, m.keys_match FROM dup d JOIN ({per_entity}) m USING (rid)
    """


def g13_keep_sql() -> str:
    """Of the duplicates (``_dup``), the links kept: keys matching, one per Svenn id, then one
    per Tripletex id (the most recently synced, then the oldest); all others are detached."""
    return """
    WITH per_svenn AS (
      SELECT *, row_number() OVER (
        PARTITION BY entity, svenn_id IS NULL, coalesce(svenn_id, rid)
        ORDER BY last_synced_at DESC NULLS LAST, linked_at, rid) AS n
      FROM _dup WHERE keys_match
    ),
    per_tripletex AS (
      SELECT *, row_number() OVER (
        PARTITION BY entity, tripletex_id IS NULL, coalesce(tripletex_id, rid)
        ORDER BY last_synced_at DESC NULLS LAST, linked_at, rid) AS n2
      FROM per_svenn WHERE n = 1
    )
    SELECT rid FROM per_tripletex WHERE n2 = 1
    """


def _detached_finding(tenant: str, repair_id: str, pair: dict) -> Any:
    from sync_pipeline.assets.apply.error_log import Finding
    from sync_pipeline.model import CODES

    spec = CODES["LINK_DETACHED"]
    reason = "duplicate active link detached by repair-links"
    if not pair["keys_match"]:
        reason += "; the keys no longer match"
    return Finding(
        tenant=tenant,
        run_id=repair_id,
        entity=pair["entity"],
        side=None,
        svenn_id=pair["svenn_id"],
        tripletex_id=pair["tripletex_id"],
        record_label=None,
        code=spec.code,
        severity=spec.severity,
        rule_id=spec.rule_id,
        message=spec.message,
        details={"rule_id": spec.rule_id, "reason": reason},
    )


def cmd_repair_links(args: argparse.Namespace) -> int:
    """Resolve ids held by two active links (G13): exact copies of one pair are merged into
    one link; of differing pairs the one whose keys still match on both sides stays, every
    other is detached and logged as LINK_DETACHED. Holds the tenant's lease meanwhile."""
    from sync_pipeline.assets.apply.error_log import insert_findings, merge_error_log

    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    instance = dagster_instance()
    _refuse_if_busy(instance, key)
    repair_id = f"repair-links-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    with open_db() as conn:
        if not args.dry_run:
            try:
                lease.acquire(conn, key, repair_id, finished=lease.finished_in(instance))
            except lease.LeaseRefused as refused:
                raise TenantBusy(f"{refused}; try again when it has finished") from None
        try:
            conn.execute("BEGIN TRANSACTION")
            copies = _rows(
                conn,
                """SELECT rowid AS rid, entity, svenn_id, tripletex_id FROM sync.links
                   WHERE tenant = ? AND state = 'active'
                     AND svenn_id IS NOT NULL AND tripletex_id IS NOT NULL
                   QUALIFY row_number() OVER (PARTITION BY entity, svenn_id, tripletex_id
                     ORDER BY last_synced_at DESC NULLS LAST, linked_at, rowid) > 1""",
                [key],
            )
            if copies and not args.dry_run:
                conn.execute(
                    "DELETE FROM sync.links WHERE tenant = ? AND rowid IN (SELECT unnest(?))",
                    [key, [r["rid"] for r in copies]],
                )
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE _dup AS {g13_duplicate_links_sql()}",
                {"tenant": key, "copies": [r["rid"] for r in copies]},
            )
            conn.execute(f"CREATE OR REPLACE TEMP TABLE _keep AS {g13_keep_sql()}")
            pairs = _rows(
                conn,
                """SELECT d.entity, d.svenn_id, d.tripletex_id, d.keys_match,
                          CASE WHEN k.rid IS NULL THEN 'detach' ELSE 'keep' END AS action
                   FROM _dup d LEFT JOIN _keep k USING (rid)
                   ORDER BY d.entity, d.svenn_id, d.tripletex_id""",
            )
            detached = [p for p in pairs if p["action"] == "detach"]
            if detached and not args.dry_run:
                # G13: why, for the LINK_DETACHED warning every later run raises again
                conn.execute(
                    "INSERT INTO sync.link_detachments SELECT tenant, entity, svenn_id, "
                    "tripletex_id, 'G13', 'duplicate active link detached by repair-links', "
                    "?, now() FROM sync.links WHERE tenant = ? AND rowid IN "
                    "(SELECT rid FROM _dup ANTI JOIN _keep USING (rid))",
                    [repair_id, key],
                )
                conn.execute(
                    "UPDATE sync.links SET state = 'detached' WHERE tenant = ? AND rowid IN "
                    "(SELECT rid FROM _dup ANTI JOIN _keep USING (rid))",
                    [key],
                )
                insert_findings(conn, [_detached_finding(key, repair_id, p) for p in detached])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        finally:
            if not args.dry_run:
                lease.release(conn, repair_id, key)
        if detached and not args.dry_run:
            merge_error_log(conn, key, repair_id, complete=False)
    if not copies and not pairs:
        print(f"tenant '{key}': no id is in two active links; nothing to repair")
        return EXIT_OK
    verb = "would be" if args.dry_run else "were"
    print(f"tenant '{key}': {len(copies)} copies of a link {verb} merged into one")
    if pairs:
        print(format_table(pairs, ("entity", "svenn_id", "tripletex_id", "keys_match", "action")))
    print(
        f"tenant '{key}': {len(pairs) - len(detached)} links kept, {len(detached)} {verb} "
        "detached (LINK_DETACHED in the error log; re-attach one with `sync-pipeline relink`)"
    )
    return EXIT_OK


# -- tenant binding (G11) and held creates (G12) -----------------------------------------------
def binding_refusal(result) -> str | None:
    """The reason a run was refused by the binding check (G11), or None if it was not.

    Read from the run's events: the check fails its step with a ``Failure`` whose
    description is the one-line reason (any other error of that step is an ordinary
    failure, e.g. rejected credentials)."""
    from sync_pipeline.assets.extract.binding import BINDING_KEY

    step = BINDING_KEY.to_python_identifier()
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key == step:
            failure = event.event_specific_data.user_failure_data
            if failure is not None and failure.description:
                return failure.description
    return None


def bind_at_approval(key: str, config: TenantConfig, actor: str) -> str:
    """Go-live records (or confirms) the companies the tenant's credentials belong to now;
    a company other than the bound one, or bound to another tenant, refuses the approval.
    Unreachable APIs do not block it: the next run's check records and enforces them."""
    from sync_pipeline.assets.extract.binding import check_and_bind, company_ids
    from sync_pipeline.resources.http import ApiError

    try:
        ids = company_ids(config, max_retries=0)
    except ApiError as err:
        return (
            f"tenant '{key}': companies not recorded now ({err}); the next run records "
            "and checks them (G11)"
        )
    with open_db() as conn:
        check, new = check_and_bind(conn, key, ids, by=actor, how="approve")
    if check.problems:
        raise CliError(
            f"tenant '{key}' not approved (G11): {'; '.join(check.problems)}. Fix the "
            f"tenants file, or if the tenant really moved: sync-pipeline rebind --tenant {key}"
        )
    return (
        f"tenant '{key}' {'bound' if new else 'is bound'} to Svenn company {ids.svenn} and "
        f"Tripletex company {ids.tripletex} (G11)"
    )


def cmd_rebind(args: argparse.Namespace) -> int:
    from sync_pipeline.assets.extract.binding import company_ids, rebind
    from sync_pipeline.resources.http import ApiError

    tenants = _tenants(args)
    key = _selected(args, tenants)[0]
    actor = _actor(args)
    try:
        ids = company_ids(tenants[key])
    except ApiError as err:
        raise CliError(
            f"tenant '{key}': cannot read the companies of its credentials ({err})"
        ) from None
    with open_db() as conn:
        check, resolved = rebind(conn, key, ids, by=actor)
        (links,) = conn.execute(
            "SELECT count(*) FROM sync.links WHERE tenant = ? AND state = 'active'", [key]
        ).fetchone()
    if check.taken:
        raise CliError(f"tenant '{key}' not rebound (G11): {'; '.join(check.taken)}")
    was = ", ".join(
        f"{name} {check.bound[side]}"
        for side, name in (("svenn", "Svenn"), ("tripletex", "Tripletex"))
        if check.bound[side] is not None
    )
    print(
        f"tenant '{key}' bound by {actor} to Svenn company {ids.svenn} and Tripletex company "
        f"{ids.tripletex}" + (f" (was {was})" if was else "") + f"; {resolved} "
        "TENANT_BINDING_CHANGED error(s) resolved; the next run syncs these companies (G11)"
    )
    if check.changed and links:
        print(
            f"tenant '{key}': {links} active links refer to records of the former companies; "
            "unusual numbers of deletions and creates are held for confirmation (G7, G12)"
        )
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Why one record is (not) synced: read-only, the file held only for a few queries."""
    from sync_pipeline import explain

    key = _selected(args, _tenants(args))[0]
    query = {"svenn_id": args.svenn_id, "tripletex_id": args.tripletex_id, "number": args.number}
    try:
        with explain.read_only(duckdb_path(), LOCK_WAIT_S) as conn:
            story = explain.story(conn, key, args.entity, **query)
    except explain.ExplainError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        iso = lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)  # noqa: E731
        print(json.dumps(story, default=iso, indent=2, ensure_ascii=False))
    else:
        # records' text is data: no control character reaches the operator's terminal
        print("\n".join(_CONTROL.sub(" ", line) for line in explain.to_text(story).split("\n")))
    return EXIT_OK


# -- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync-pipeline",
        description="Operate the Svenn ⇄ Tripletex sync: run it, review plans, read the error log.",
    )
    parser.add_argument(
        "--tenants-file",
        default=None,
        help="tenants YAML (default: $SYNC_TENANTS_FILE or data/tenants.yaml)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the API clients' warnings"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("run", cmd_run, "sync one tenant or all of them (recorded in the Dagster UI)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tenant", metavar="KEY")
    which.add_argument("--all", action="store_true", help="every tenant of the tenants file")
    p.add_argument("--full", action="store_true", help="full extract instead of incremental")

    p = command("plan", cmd_plan, "compute and show a tenant's plan without writing (G9)")
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--full", action="store_true", help="full extract instead of incremental")
    p.add_argument("--limit", type=int, default=50, help="operations to list (default 50)")

    p = command("errors", cmd_errors, "the error log (open errors unless --history)")
    p.add_argument("--tenant", metavar="KEY")
    p.add_argument("--history", action="store_true", help="include resolved errors")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")

    p = command("approve", cmd_approve, "record the go-live of a tenant in review mode (G9)")
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--by", help="who approves (default: $USER)")

    p = command("relink", cmd_relink, "re-attach a detached link (C6)")
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--entity", choices=("customer", "project", "employee"), required=True)
    ids = p.add_mutually_exclusive_group(required=True)
    ids.add_argument("--svenn-id", type=int)
    ids.add_argument("--tripletex-id", type=int)

    p = command(
        "confirm-deletes",
        cmd_confirm_deletes,
        "release deletions held by the mass-delete guard (G7)",
    )
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--by", help="who confirms (default: $USER)")

    p = command(
        "rebind",
        cmd_rebind,
        "bind a tenant to the companies its credentials belong to now (G11)",
    )
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--by", help="who rebinds (default: $USER)")

    p = command(
        "confirm-creates",
        cmd_confirm_creates,
        "release creates held by the mass-create guard (G12)",
    )
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--by", help="who confirms (default: $USER)")

    command("tenants", cmd_tenants, "each tenant's mode, last run, outcome, open errors and lease")

    p = command(
        "repair-links",
        cmd_repair_links,
        "resolve ids held by two active links: keep the pair whose keys match, detach the "
        "others (G13)",
    )
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--dry-run", action="store_true", help="only report what would change")

    p = command("explain", cmd_explain, "why one record is (not) synced: its story, newest first")
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--entity", choices=("project", "customer", "employee"), required=True)
    ids = p.add_mutually_exclusive_group(required=True)
    ids.add_argument("--svenn-id", type=int)
    ids.add_argument("--tripletex-id", type=int)
    ids.add_argument("--number", help="the record's number (the key both systems share)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tenants_file:  # the runs' TenantsResource reads the same variable
        os.environ[TENANTS_FILE_ENV] = args.tenants_file
    # Library log records (client retries, …) are in the Dagster event log; here only on -v.
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.CRITICAL + 1,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Dagster's preview/deprecation notices are for developers, not in an operator's output.
    warnings.filterwarnings("ignore", module=r"dagster(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*Definitions.resolve_job_def")
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"sync-pipeline: {exc}", file=sys.stderr)
        return exc.exit_code
    except TenantConfigError as exc:
        print(f"sync-pipeline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sync-pipeline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
