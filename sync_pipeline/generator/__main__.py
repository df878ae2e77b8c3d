"""Print a generated world: `python -m sync_pipeline.generator [--seed N] [--scale S] [--summary]`.

The full JSON is what the sandboxes load; the summary shows sizes and case counts at a glance.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .world import DEMO_SEED, SCALES, generate_world


def _scale(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sync_pipeline.generator", description=__doc__)
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument(
        "--scale", type=_scale, default="demo", help=f"{', '.join(SCALES)} or a factor of large"
    )
    p.add_argument("--summary", action="store_true", help="sizes and case counts only")
    args = p.parse_args(argv)
    try:
        world = generate_world(args.seed, args.scale)
    except ValueError as exc:
        p.error(str(exc))
    if args.summary:
        summary = {
            "company": world.company,
            "svenn": {name: len(records) for name, records in world.svenn.items()},
            "tripletex": {name: len(records) for name, records in world.tripletex.items()},
            "pairs": {entity: len(pairs) for entity, pairs in world.pairs.items()},
            "cases": {rule: len(found) for rule, found in sorted(world.cases.items())},
        }
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
    else:
        json.dump(dataclasses.asdict(world), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
