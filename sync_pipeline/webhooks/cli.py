"""``sync-pipeline webhooks serve|subscribe|status``: the receiver and the subscriptions.

``add_parser(subparsers)`` adds the ``webhooks`` command to the main parser; each
sub-command sets ``handler`` (called with the parsed args, returns the exit code) the way
the main CLI's commands do. Config problems raise ``TenantConfigError``, which the main
CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os

from sync_pipeline.tenants import TenantConfigError, load_tenants


def _tenant(args: argparse.Namespace):
    tenants = load_tenants(getattr(args, "tenants_file", None) or None)
    if args.tenant not in tenants:
        known = ", ".join(sorted(tenants)) or "none"
        raise TenantConfigError(f"unknown tenant '{args.tenant}' (known: {known})")
    return tenants[args.tenant]


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sync_pipeline.webhooks.app import create_app

    app = create_app(tenants_file=getattr(args, "tenants_file", None), spool_file=args.spool)
    print(
        json.dumps({"receiver": f"http://{args.host}:{args.port}", "spool": str(args.spool or "")}),
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    from sync_pipeline.webhooks import subscriptions

    changes = subscriptions.ensure(_tenant(args), args.public_url, rotate_svenn=args.rotate_svenn)
    for change in changes:
        print(change)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sync_pipeline.webhooks import subscriptions

    print(json.dumps(subscriptions.status(_tenant(args)), indent=2, sort_keys=True))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``webhooks`` command with its sub-commands, on the main CLI's subparsers."""
    help_text = "receive webhooks from Tripletex and Svenn, and manage their subscriptions"
    parser = subparsers.add_parser("webhooks", help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="webhooks_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser(
        "serve",
        help="run the receiver (put it behind HTTPS in production)",
        description="Serve POST /webhooks/tripletex/<tenant> and /webhooks/svenn/<tenant>.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8810)
    p.add_argument(
        "--spool",
        default=os.environ.get("SYNC_WEBHOOK_SPOOL"),
        help="SQLite spool file (default: $SYNC_WEBHOOK_SPOOL or data/webhooks.sqlite)",
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser(
        "subscribe",
        help="create or repair a tenant's subscriptions on both sides (idempotent)",
        description="Subscribe the receiver at --public-url to the tenant's project, customer "
        "and employee events; re-enables a disabled Tripletex subscription.",
    )
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.add_argument("--public-url", required=True, help="the receiver's public https base URL")
    p.add_argument(
        "--rotate-svenn",
        action="store_true",
        help="replace the Svenn subscription (to send a changed secret)",
    )
    p.set_defaults(handler=cmd_subscribe)

    p = sub.add_parser("status", help="a tenant's subscriptions and their status on both sides")
    p.add_argument("--tenant", metavar="KEY", required=True)
    p.set_defaults(handler=cmd_status)
    return parser
