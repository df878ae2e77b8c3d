"""The Dagster instance's PostgreSQL storage, on the driver dagster-postgres is tested with.

``SYNC_DAGSTER_POSTGRES_URL`` is a libpq URL (``postgresql://user:pw@host:5432/db``). Given
to dagster-postgres as is, SQLAlchemy 2.1 picks the psycopg 3 driver for it, which sends
parameters server-side: dagster-postgres' ``NOTIFY channel, :id`` then fails, and psycopg 3
is not even installed here. This storage pins the psycopg2 driver whatever scheme the URL
has, so the same libpq URL serves ``psql``, the CLI, the schedules and the UI.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POSTGRES_URL_ENV = "SYNC_DAGSTER_POSTGRES_URL"
DRIVER_SCHEME = "postgresql+psycopg2"


def sqlalchemy_url(url: str) -> str:
    """The libpq URL with its scheme naming the psycopg2 driver (any other driver refused)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", DRIVER_SCHEME):
        raise ValueError(
            f"{POSTGRES_URL_ENV} must be a postgresql:// URL (got scheme {scheme or 'none'!r})"
        )
    return f"{DRIVER_SCHEME}://{rest}"


def redacted(url: str) -> str:
    """The URL without its password, for messages (host, port and database stay)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # not even a URL: show none of it
        return "(the URL, not shown: it does not parse)"
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStorage(DagsterPostgresStorage):
    """dagster-postgres' run, event-log and schedule storage with the driver pinned."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        return DagsterPostgresStorage(
            inst_data=inst_data,
            postgres_url=sqlalchemy_url(pg_url_from_config(config_value)),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
