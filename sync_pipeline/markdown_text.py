"""Text from tenants' records inside the markdown the Dagster UI renders (asset metadata).

A record named ``[click](http://evil)`` or ``![x](http://evil/x.png)`` is data: every
preview table escapes its cells, so the UI shows the text instead of a link, an image
(which the browser would fetch) or raw HTML, and a ``|`` or line break cannot break the
table. One function for every preview helper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: Markdown punctuation that can start a link, image, autolink, HTML, entity, code span or
#: table cell; a backslash makes each a literal character (CommonMark: any ASCII
#: punctuation). Emphasis marks are left alone: they only style text.
_SPECIAL = re.compile(r"([\\`\[\]()!|<>&])")
#: Bare URLs and e-mail addresses that GFM would turn into links (``http://``, ``www.``, ``@``).
_AUTOLINK = re.compile(r"(:)(?=//)|(?<=www)(\.)|(@)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def md_cell(value: Any, width: int | None = None) -> str:
    """``value`` as the literal text of one markdown table cell, cut to ``width`` characters
    (before escaping, so an escape is never cut in half)."""
    text = _CONTROL.sub(" ", "" if value is None else str(value))
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    text = _SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0), text)


def md_table(
    header: Sequence[Any], rows: Sequence[Sequence[Any]], width: int | None = None, empty: str = ""
) -> str:
    """A markdown table of ``rows`` with every cell escaped; ``empty`` when there are none."""
    if not rows:
        return empty
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v, width) for v in row) + " |" for row in rows]
    return "\n".join(lines)
