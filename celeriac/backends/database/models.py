"""Celery 5.7's result tables in SQLAlchemy Core, and ``db+`` URL -> SQLAlchemy URL.

The column list, types, sequences and indexes are those of ``celery.backends.database.models``
(``TaskExtended`` and ``TaskSet``): Celery always creates the extended columns, because
its metadata holds the extended model, so a table created by either side suits both.
This module imports SQLAlchemy; ``backends/database.py`` imports it only when used, so the
default install (stdlib SQLite only) never needs it.
"""

from __future__ import annotations

import importlib.util

import sqlalchemy as sa

from celeriac.backends.database.table_layout import BASE_COLUMNS, ENCODED_COLUMNS, EXTENDED_COLUMNS
from celeriac.exceptions import ImproperlyConfigured

#: ``db+<dialect>`` -> the extra that installs its driver.
EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
_DIALECT_ALIASES = {"postgres": "postgresql"}


def task_table(metadata: sa.MetaData, name: str, schema: str | None) -> sa.Table:
    """``celery_taskmeta`` (or ``name``), with every column of Celery's ``TaskExtended``."""
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "id",
            sa.Integer,
            sa.Sequence("task_id_sequence", schema=schema),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("task_id", sa.String(155), unique=True),
        sa.Column("status", sa.String(50)),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("date_done", sa.DateTime, nullable=True, index=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("children", sa.LargeBinary, nullable=True),
        sa.Column("name", sa.String(155), nullable=True),
        sa.Column("args", sa.LargeBinary, nullable=True),
        sa.Column("kwargs", sa.LargeBinary, nullable=True),
        sa.Column("worker", sa.String(155), nullable=True),
        sa.Column("retries", sa.Integer, nullable=True),
        sa.Column("queue", sa.String(155), nullable=True),
        sa.Column("stamps", sa.LargeBinary, nullable=True),
        schema=schema,
        sqlite_autoincrement=True,
    )


def group_table(metadata: sa.MetaData, name: str, schema: str | None) -> sa.Table:
    """``celery_tasksetmeta`` (or ``name``), as Celery's ``TaskSet``."""
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "id",
            sa.Integer,
            sa.Sequence("taskset_id_sequence", schema=schema),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("taskset_id", sa.String(155), unique=True),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("date_done", sa.DateTime, nullable=True, index=True),
        schema=schema,
        sqlite_autoincrement=True,
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def split_dialect(url: str) -> tuple[str, str]:
    """``db+postgresql+psycopg://...`` -> ``("postgresql", "psycopg")``."""
    rest = url[3:] if url.lower().startswith("db+") else url
    scheme = rest.partition("://")[0].lower()
    dialect, _, driver = scheme.partition("+")
    return _DIALECT_ALIASES.get(dialect, dialect), driver


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of a ``db+`` result backend URL, with an installed driver.

    ``db+postgresql://`` means psycopg2 to SQLAlchemy; when only psycopg 3 is installed
    (celeriac's ``postgres`` extra) it is used instead. Likewise ``db+mysql://`` falls back
    from MySQLdb to PyMySQL.
    """
    rest = url[3:] if url.lower().startswith("db+") else url
    tail = rest.partition("://")[2]
    dialect, driver = split_dialect(url)
    if not driver:
        if dialect == "postgresql" and not _installed("psycopg2") and _installed("psycopg"):
            driver = "psycopg"
        elif dialect in ("mysql", "mariadb") and not _installed("MySQLdb"):
            driver = "pymysql"
    scheme = f"{dialect}+{driver}" if driver else dialect
    return f"{scheme}://{tail}"


def missing_driver(url: str, exc: BaseException) -> ImproperlyConfigured:
    """The error for a driver that is not installed, naming the extra that installs it."""
    dialect, _ = split_dialect(url)
    extra = EXTRAS.get(dialect, "sqlalchemy")
    return ImproperlyConfigured(
        f"The {dialect} database driver for result_backend is not installed ({exc}). "
        f"Install it with: pip install 'celeriac[{extra}]'"
    )


__all__ = [
    "BASE_COLUMNS",
    "ENCODED_COLUMNS",
    "EXTENDED_COLUMNS",
    "group_table",
    "missing_driver",
    "split_dialect",
    "sqlalchemy_url",
    "task_table",
]
