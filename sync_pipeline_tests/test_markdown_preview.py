"""G10: the previews in the Dagster UI (asset metadata as markdown) show records' text as
text: a record named like a link or an image renders as that text, never as a link, an
image the browser fetches, or HTML; a ``|`` or line break cannot break the table."""

from __future__ import annotations

import html
import re

import duckdb
import pytest
from markdown_it import MarkdownIt

from sync_pipeline.assets.apply.assets import PREVIEW_WIDTH as APPLY_WIDTH
from sync_pipeline.assets.extract.outputs import PREVIEW_WIDTH as EXTRACT_WIDTH
from sync_pipeline.assets.rules.step import preview_md
from sync_pipeline.markdown_text import md_table
from sync_pipeline.resources.state import preview

HOSTILE = [
    "[click](http://evil)",
    "![x](http://evil/x.png)",
    "<img src=x onerror=alert(1)> two\nlines | Anlegg AS",
    "<http://evil> `code` and \\[escaped\\]\r\n",
    "Ola & Kari &amp; co, www.evil.no, post@evil.no",
]


def _render(markdown: str) -> str:
    # CommonMark with raw HTML allowed and GFM tables: what an unescaped cell would become.
    return MarkdownIt("commonmark").enable("table").render(markdown)


def _cells(rendered: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", rendered, re.S)]


def _as_text(value: str) -> str:
    return " ".join(value.split())  # line breaks become spaces inside a table cell


def _query(conn: duckdb.DuckDBPyConnection) -> str:
    conn.execute("CREATE TABLE names (n INTEGER, name VARCHAR)")
    conn.executemany("INSERT INTO names VALUES (?, ?)", list(enumerate(HOSTILE)))
    return "SELECT n, name FROM names ORDER BY n"


@pytest.mark.parametrize("helper", ["rules", "extract", "apply", "apply.rows"])
def test_G10_markdown_preview_escapes_links_images(helper):
    """Every preview in the UI: the state store's query preview as the rule, extract and
    apply assets call it, and the apply step's table of in-memory rows."""
    with duckdb.connect() as conn:
        sql = _query(conn)
        if helper == "rules":
            markdown = preview_md(conn, sql, {}).value
        elif helper == "extract":
            markdown = preview(conn, sql, [], width=EXTRACT_WIDTH)
        elif helper == "apply":
            markdown = preview(conn, sql, [], width=APPLY_WIDTH)
        else:
            markdown = md_table(["n", "name"], conn.execute(sql).fetchall(), width=APPLY_WIDTH)

    rendered = _render(markdown)

    assert "<a " not in rendered and "<img" not in rendered, rendered
    assert rendered.count("<tr>") == 1 + len(HOSTILE), "one table row per record"
    names = _cells(rendered)[1::2]
    width = 40 if helper == "extract" else 120  # the helpers' cell widths
    for name, shown in zip(HOSTILE, names, strict=True):
        expected = _as_text(name)
        if len(expected) > width:
            expected = expected[: width - 1] + "…"
        assert _as_text(shown) == expected


def test_G10_markdown_cells_break_bare_autolinks():
    """GFM (the UI's markdown) links bare URLs and e-mail addresses; an escape breaks them."""
    from sync_pipeline.markdown_text import md_cell

    assert md_cell("se http://evil.no") == "se http\\://evil.no"
    assert md_cell("www.evil.no") == "www\\.evil.no"
    assert md_cell("post@evil.no") == "post\\@evil.no"
