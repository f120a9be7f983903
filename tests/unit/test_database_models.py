"""The SQLAlchemy result backend without a server: URLs, drivers, errors and table layout."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from celeriac.app.config import Settings
from celeriac.backends.database import models
from celeriac.backends.database.backend import DatabaseBackend
from celeriac.backends.database.models import group_table, sqlalchemy_url, task_table
from celeriac.backends.schemes import backend_from_url
from celeriac.exceptions import ImproperlyConfigured, OperationalError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # psycopg2 is not installed here; psycopg 3 is: plain postgresql:// must still work.
        ("db+postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("db+postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("db+postgresql+psycopg://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
        ("db+mysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("db+mysql+pymysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("db+mariadb://root@h/db", "mariadb+pymysql://root@h/db"),
        ("db+sqlite+pysqlite:////tmp/x.db", "sqlite+pysqlite:////tmp/x.db"),
    ],
)
def test_sqlalchemy_url(url: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = {"psycopg2", "MySQLdb"}
    monkeypatch.setattr(models, "_installed", lambda name: name not in missing)
    assert sqlalchemy_url(url) == expected


def test_plain_postgresql_prefers_psycopg2_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_installed", lambda name: True)
    assert sqlalchemy_url("db+postgresql://u@h/db") == "postgresql://u@h/db"


def test_schemes_reach_the_database_backend() -> None:
    conf = Settings({"database_create_tables_at_setup": False})
    backend = backend_from_url("db+postgresql://u@localhost/db", conf)
    assert isinstance(backend, DatabaseBackend)
    assert isinstance(backend_from_url("db+mysql+pymysql://u@localhost/db", conf), DatabaseBackend)


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # makes ``import psycopg2`` fail
    monkeypatch.setitem(sys.modules, "MySQLdb", None)
    conf = Settings({"database_create_tables_at_setup": False})
    backend = DatabaseBackend("db+postgresql+psycopg2://u:secret@localhost/db", conf)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[postgres\]'"):
        backend.get_state("x")
    backend = DatabaseBackend("db+mysql+mysqldb://u@localhost/db", conf)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[mysql\]'"):
        backend.get_state("x")


def test_unreachable_database_names_the_masked_url() -> None:
    url = "db+postgresql://user:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(OperationalError) as info:
        DatabaseBackend(url, Settings())
    message = str(info.value)
    assert "db+postgresql://user:**@127.0.0.1:1/nowhere" in message
    assert "hunter2" not in message


def _ddl(tables: list[sa.Table], dialect: sa.Dialect) -> list[str]:
    statements = []
    for table in tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements += [str(CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes]
    return statements


@pytest.mark.parametrize("dialect", [postgresql.dialect(), mysql.dialect(), sqlite.dialect()])
def test_tables_are_celerys(dialect: sa.Dialect) -> None:
    from celery.backends.database.models import TaskExtended, TaskSet

    TaskExtended.configure()  # Celery's models are global: undo any earlier test's schema
    TaskSet.configure()

    metadata = sa.MetaData()
    ours = [
        task_table(metadata, "celery_taskmeta", None),
        group_table(metadata, "celery_tasksetmeta", None),
    ]
    theirs = [TaskExtended.__table__, TaskSet.__table__]
    assert _ddl(ours, dialect) == _ddl(theirs, dialect)  # type: ignore[arg-type]


def test_stdlib_sqlite_backend_has_the_same_layout(tmp_path: object) -> None:
    """``db+sqlite`` (stdlib) and ``db+sqlite+pysqlite`` (SQLAlchemy) share one file."""
    path = f"{tmp_path}/shared.sqlite"
    stdlib = backend_from_url(f"db+sqlite:///{path}", Settings())
    stdlib.mark_as_done("a", 1)
    alchemy = backend_from_url(f"db+sqlite+pysqlite:///{path}", Settings())
    assert isinstance(alchemy, DatabaseBackend)
    assert alchemy.get_result("a") == 1
    alchemy.mark_as_done("b", [2])
    assert stdlib.get_result("b") == [2]
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("celery_taskmeta")]
    engine.dispose()
    assert columns == [c.name for c in task_table(sa.MetaData(), "t", None).columns]
    stdlib.close()
    alchemy.close()
