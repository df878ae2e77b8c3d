"""The three output formats of the reports: an aligned text table, JSON and CSV.

Records' text is data: no control character reaches the operator's terminal, and no CSV
cell opens as a formula in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def cell(value: Any) -> str:
    """One table cell: times in UTC, floats to one decimal, control characters as spaces."""
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
    return CONTROL.sub(" ", str(value))


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def format_table(rows: Sequence[dict], columns: Sequence[str], max_width: int = 60) -> str:
    """A plain aligned text table (no colours, safe in logs and CI)."""
    cells = [[cell(r.get(c))[:max_width] for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(s.rstrip() for s in out)


def plain_text(text: str) -> str:
    """Multi-line text with records' data in it: line breaks kept, other control characters
    (terminal escapes) made spaces."""
    return "\n".join(CONTROL.sub(" ", line) for line in text.split("\n"))


def write(rows: Sequence[dict], columns: Sequence[str], fmt: str) -> None:
    """``rows`` on stdout as a table (``(none)`` when empty), JSON or CSV."""
    if fmt == "json":
        print(json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{c: csv_value(r.get(c)) for c in columns} for r in rows])
        sys.stdout.write(buf.getvalue())
    else:
        print(format_table(rows, columns) if rows else "(none)")


#: What a spreadsheet reads as the start of a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_value(value: Any) -> Any:
    """A CSV cell; text from tenants' records that a spreadsheet would run as a formula
    (``=HYPERLINK(…)``, ``@SUM(…)``) gets a leading ``'`` so it opens as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
