"""A DuckDB idiom the apply step needs in several places."""

from __future__ import annotations

from typing import Any

import duckdb


def first(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of an executed query, with the result consumed.

    DuckDB 2 keeps a result open after ``fetchone()``; the next ``register()`` on the
    connection then fails, so the rows are fetched completely.
    """
    rows = result.fetchall()
    return rows[0] if rows else None
