"""Download Tripletex's current OpenAPI document, for users who have the internet.

The contract tests validate the Tripletex sandbox against the official
documents in ``../shared/reference/tripletex/`` and skip when that folder is
absent. In your own clone, fetch the current document into that folder:

    .venv/bin/python scripts/fetch_tripletex_openapi.py            # → ../shared/reference/tripletex/
    .venv/bin/python scripts/fetch_tripletex_openapi.py --out DIR

The documents are Tripletex's, not ours: never commit them to this repository.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import requests

URL = "https://tripletex.no/v2/openapi.json"
DEFAULT_OUT = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "tripletex"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write into")
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    resp = requests.get(args.url, timeout=60)
    resp.raise_for_status()
    document = resp.json()
    version = document.get("info", {}).get("version", "current")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"openapi-{version}.json"
    target.write_text(json.dumps(document, ensure_ascii=False))
    print(f"wrote {target} (Tripletex API {version})")
    print("The contract tests use openapi-2.74.00.json; copy or rename if your version differs.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
