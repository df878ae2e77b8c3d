"""``sync-pipeline``: the operator's command line — the argparse front end of ``sync_pipeline.ops``.

``run`` and ``plan`` execute the same Dagster jobs as the UI and the schedules, recorded in
the persistent Dagster instance (``DAGSTER_HOME``, default ``data/dagster_home``) so every
run shows in the UI. The other commands read or record operator decisions in DuckDB. Any
problem an operator can fix (unknown tenant, bad tenants file, database locked, the tenant
being synced by another run, G13) is one line on stderr and exit code 2; a failed run is
exit code 1 with its reason.

A command group is a module with ``add_parser(subparsers)`` (each parser sets ``handler``,
called with the parsed arguments, returning the exit code); adding one to
``COMMAND_MODULES`` is all it takes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sync_pipeline.ops import EXIT_USAGE, OperatorError, decisions, reports, runs
from sync_pipeline.ops.progress import quiet_console
from sync_pipeline.tenants import TenantConfigError
from sync_pipeline.webhooks import cli as webhooks

#: The command groups, in the order ``--help`` lists them.
COMMAND_MODULES = (runs, reports, decisions, webhooks)


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
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_console(args.verbose)
    try:
        return args.handler(args)
    except (OperatorError, TenantConfigError) as exc:
        print(f"sync-pipeline: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        print("sync-pipeline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
