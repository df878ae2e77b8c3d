"""The small toolkit every writer of the state store uses: a transaction, staged rows, a preview.

One home for the three idioms so a second storage backend (DuckLake) has one seam to meet and
no module hand-writes BEGIN/COMMIT/ROLLBACK, ``register``/``unregister`` or markdown tables.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from sync_pipeline.markdown_text import md_table

_names = itertools.count()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together or not at all (any exception rolls back, then
    propagates). An early ``return`` inside commits."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _column(values: Sequence[Any]) -> pa.Array:
    """A column as Arrow infers it (nullable integers stay integers); a column Arrow cannot
    type as one (mixed kinds of values) is sent as text rather than refused.

    Arrow rather than pandas: the state store needs no DataFrame, and importing pandas cost
    every run's process a third of a second (issue 13)."""
    try:
        return pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def columns(
    items: Sequence[Any], *names: str, **derived: str | Callable[[Any], Any]
) -> dict[str, list[Any]]:
    """Objects (dataclasses) as the columns ``staged_rows`` takes: each of ``names`` is an
    attribute of the same name; each ``derived`` column is another attribute's name or a
    function of the object (e.g. JSON text)."""
    out: dict[str, list[Any]] = {name: [getattr(i, name) for i in items] for name in names}
    for name, how in derived.items():
        get = (lambda i, attr=how: getattr(i, attr)) if isinstance(how, str) else how
        out[name] = [get(i) for i in items]
    return out


@contextmanager
def staged_rows(
    conn: duckdb.DuckDBPyConnection, columns: Mapping[str, Sequence[Any]] | pa.Table
) -> Iterator[str]:
    """Rows from Python (columns by name, or an Arrow table as the extracts build them) as a
    view for one set-based statement; yields the view's name.

    The caller's ``INSERT INTO t (cols) SELECT … FROM <view>`` names its columns, so the
    statement never depends on a table's column order.
    """
    name = f"_staged_{next(_names)}"
    if isinstance(columns, pa.Table):
        conn.register(name, columns)
    else:
        conn.register(name, pa.table({k: _column(v) for k, v in columns.items()}))
    try:
        yield name
    finally:
        conn.unregister(name)


def preview(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    *,
    limit: int = 20,
    width: int | None = None,
) -> str:
    """A query's first rows as a markdown table for the Dagster UI (cells escaped: records'
    text is data, not markup)."""
    cur = conn.execute(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", params)
    names = [d[0] for d in cur.description]
    return md_table(names, cur.fetchall(), width=width, empty="_no rows_")
