"""``python -m sync_pipeline.sandbox tripletex|svenn|all``: local stand-ins for both APIs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from sync_pipeline.sandbox.core import SEEDS, RateLimitSpec
from sync_pipeline.sandbox.server import SandboxServer, serve

DEFAULTS = {
    "tripletex": {"port": 8801, "key": "sandbox-employee-token"},
    "svenn": {"port": 8802, "key": "sandbox-api-key"},
}


def _rate_limit(text: str) -> RateLimitSpec | None:
    try:
        return RateLimitSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _scale(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def build_server(
    kind: str, args: argparse.Namespace, port: int, state: Path | None
) -> SandboxServer:
    seed_options: dict = {}
    if args.seed == "world":
        seed_options = {"world_seed": args.world_seed, "scale": args.scale}
    common = dict(
        seed=args.seed, seed_options=seed_options, state_file=state, rate_limit=args.rate_limit
    )
    if kind == "tripletex":
        from sync_pipeline.sandbox.tripletex import create_app

        key = args.employee_token or DEFAULTS["tripletex"]["key"]
        app = create_app(startup_key=key, max_result_set=args.max_result_set, **common)
        announce = {
            "service": "tripletex",
            "api_prefix": "/v2",
            "employee_token": key,
            "consumer_token": "sandbox-consumer-token",
        }
    else:
        from sync_pipeline.sandbox.svenn import create_app

        key = args.api_key or DEFAULTS["svenn"]["key"]
        app = create_app(startup_key=key, **common)
        announce = {"service": "svenn", "api_prefix": "/api/v1", "api_key": key}
    return SandboxServer(app, host=args.host, port=port, announce=announce)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sync_pipeline.sandbox", description=__doc__)
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("tripletex", "svenn", "all"):
        s = sub.add_parser(
            kind, help=f"serve the {kind} sandbox" if kind != "all" else "serve both"
        )
        s.add_argument("--host", default="127.0.0.1")
        if kind == "all":
            s.add_argument("--tripletex-port", type=int, default=DEFAULTS["tripletex"]["port"])
            s.add_argument("--svenn-port", type=int, default=DEFAULTS["svenn"]["port"])
            s.add_argument(
                "--state-dir", type=Path, help="keep both sandboxes' data in this folder"
            )
        else:
            s.add_argument(
                "--port", type=int, default=DEFAULTS[kind]["port"], help="0 picks a free port"
            )
            s.add_argument("--state", type=Path, help="keep the data in this file across restarts")
        s.add_argument("--seed", choices=SEEDS, default="demo", help="data of the start-up company")
        s.add_argument(
            "--world-seed", type=int, default=None, help="with --seed world: generator seed"
        )
        s.add_argument(
            "--scale", type=_scale, default="demo", help="with --seed world: preset or factor"
        )
        s.add_argument(
            "--rate-limit", type=_rate_limit, default=None, help="N/SECONDS or off (default)"
        )
        if kind in ("tripletex", "all"):
            s.add_argument("--employee-token", default=None, help="token of the start-up company")
            s.add_argument(
                "--max-result-set",
                type=int,
                default=None,
                help="refuse list queries over N objects (422/23000), off by default",
            )
        if kind in ("svenn", "all"):
            s.add_argument("--api-key", default=None, help="API key of the start-up company")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.kind == "all":
        state_dir = args.state_dir
        if state_dir:
            state_dir.mkdir(parents=True, exist_ok=True)
        servers = [
            build_server(
                "tripletex",
                args,
                args.tripletex_port,
                state_dir / "tripletex.state" if state_dir else None,
            ),
            build_server(
                "svenn", args, args.svenn_port, state_dir / "svenn.state" if state_dir else None
            ),
        ]
    else:
        servers = [build_server(args.kind, args, args.port, args.state)]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
