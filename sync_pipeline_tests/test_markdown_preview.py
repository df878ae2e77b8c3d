"""G10: the previews in the Dagster UI (asset metadata as markdown) show records' text as
text: a record named like a link or an image renders as that text, never as a link, an
image the browser fetches, or HTML; a ``|`` or line break cannot break the table."""

from __future__ import annotations

import html
import re

import duckdb
import pytest
from markdown_it import MarkdownIt

from sync_pipeline.assets.apply.assets import _md_table
from sync_pipeline.assets.extract.outputs import preview_markdown
from sync_pipeline.assets.rules.step import preview

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


@pytest.mark.parametrize("helper", ["rules.preview", "extract.preview_markdown", "apply._md_table"])
def test_G10_markdown_preview_escapes_links_images(helper):
    with duckdb.connect() as conn:
        sql = _query(conn)
        if helper == "rules.preview":
            markdown = preview(conn, sql, {}).value
        elif helper == "extract.preview_markdown":
            markdown = preview_markdown(conn, sql, [])
        else:
            markdown = _md_table(["n", "name"], conn.execute(sql).fetchall())

    rendered = _render(markdown)

    assert "<a " not in rendered and "<img" not in rendered, rendered
    assert rendered.count("<tr>") == 1 + len(HOSTILE), "one table row per record"
    names = _cells(rendered)[1::2]
    width = 40 if helper == "extract.preview_markdown" else 120  # the helpers' cell widths
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
