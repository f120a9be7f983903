"""The SQLAlchemy result backend on the real servers: clean-up (command and built-in task),
schemas, short-lived sessions, and a table created by an older Celery without the extended
columns."""

from __future__ import annotations

import itertools
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from celeriac import Celery
from celeriac.app.config import Settings
from celeriac.backends.database.backend import DatabaseBackend
from celeriac.cli.main import celeriac
from tests.servers import run_database

_names = itertools.count()
SERVERS = [pytest.param("postgres", id="postgresql"), pytest.param("mysql", id="mysql")]


def _tables() -> dict[str, str]:
    n = f"{os.getpid()}_{next(_names)}"
    return {"task": f"it_tm_{n}", "group": f"it_tsm_{n}"}


def _age(backend: DatabaseBackend, task_id: str, days: int) -> None:
    """Move a result's date_done ``days`` into the past."""
    engine = sa.create_engine(backend.sa_url)
    with engine.begin() as conn:
        old = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days)
        conn.execute(
            sa.update(backend.tasks).where(backend.tasks.c.task_id == task_id).values(date_done=old)
        )
    engine.dispose()


@pytest.mark.parametrize("server", SERVERS)
def test_cleanup_command_and_builtin_task(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "db+" + run_database(server)
    conf = {"database_table_names": _tables(), "result_expires": 3600}
    app = Celery("cleanup", broker="memory://cleanup", backend=url, **conf)
    backend = app.backend
    assert isinstance(backend, DatabaseBackend)
    for task_id in ("old-1", "old-2", "fresh"):
        backend.mark_as_done(task_id, task_id)
    _age(backend, "old-1", 2)
    assert app.tasks["celery.backend_cleanup"].apply().get() == 1
    _age(backend, "old-2", 2)
    module = f"cleanup_conf_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(
        "\n".join(f"{key} = {value!r}" for key, value in {"result_backend": url, **conf}.items())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(celeriac, ["--config", module, "cleanup"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 expired result (older than 3600 s)" in result.output
    assert [backend.get_state(t) for t in ("old-1", "old-2", "fresh")] == [
        "PENDING",
        "PENDING",
        "SUCCESS",
    ]
    app.close()


def test_table_schemas_on_postgres() -> None:
    import psycopg

    url = run_database("postgres")
    schema = f"results_{os.getpid()}_{next(_names)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    conf = Settings({"database_table_schemas": {"task": schema, "group": schema}})
    backend = DatabaseBackend("db+" + url, conf)
    backend.mark_as_done("in-schema", 7)
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT status FROM {schema}.celery_taskmeta").fetchone()
    assert row == ("SUCCESS",)
    backend.close()


@pytest.mark.parametrize("server", SERVERS)
def test_short_lived_sessions(server: str) -> None:
    conf = Settings({"database_table_names": _tables(), "database_short_lived_sessions": True})
    backend = DatabaseBackend("db+" + run_database(server), conf)
    backend.mark_as_started("s")
    backend.mark_as_done("s", {"ok": True})
    assert backend.get_result("s") == {"ok": True}
    backend.close()


@pytest.mark.parametrize("server", SERVERS)
def test_table_without_extended_columns(server: str) -> None:
    """A table created by Celery before the extended columns: results still store and read."""
    tables = _tables()
    engine = sa.create_engine(run_database(server))
    metadata = sa.MetaData()
    sa.Table(
        tables["task"],
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(155), unique=True),
        sa.Column("status", sa.String(50)),
        sa.Column("result", sa.LargeBinary),
        sa.Column("date_done", sa.DateTime),
        sa.Column("traceback", sa.Text),
    )
    metadata.create_all(engine)
    engine.dispose()
    conf: dict[str, Any] = {"database_table_names": tables, "result_extended": True}
    backend = DatabaseBackend("db+" + run_database(server), Settings(conf))
    request = {"task": "t.name", "args": [1], "kwargs": {}, "hostname": "w"}
    backend.store_result("legacy", 5, "SUCCESS", request=request)
    assert backend.get_result("legacy") == 5
    assert "name" not in backend.get_task_meta("legacy")
    backend.close()


def _kill_pooled_connection(backend: DatabaseBackend, server: str) -> None:
    """End, on the server's side, the connection the backend's pool holds (its only one)."""
    with backend._get_engine().connect() as conn:
        which = "SELECT pg_backend_pid()" if server == "postgres" else "SELECT CONNECTION_ID()"
        session = conn.exec_driver_sql(which).scalar()
    engine = sa.create_engine(run_database(server), poolclass=sa.pool.NullPool)
    with engine.connect() as admin:
        if server == "postgres":
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(str(session))})")
        else:
            admin.exec_driver_sql(f"KILL {int(str(session))}")
    engine.dispose()


@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_the_server_closed_is_replaced_without_an_error(server: str) -> None:
    """The pool does not ping before each use (a round trip per store): a pooled connection
    the server has closed fails its first statement, and that store is made again on a new
    connection, once, for single stores, the worker's held writes and reads alike."""
    backend = DatabaseBackend(
        "db+" + run_database(server), Settings({"database_table_names": _tables()})
    )
    backend.mark_as_done("before", 1)
    _kill_pooled_connection(backend, server)
    backend.mark_as_done("single", 2)
    _kill_pooled_connection(backend, server)
    assert backend.open_write_batch()
    with backend.deferring():
        backend.mark_as_done("held-1", 3)
        backend.mark_as_done("held-2", 4)
    backend.flush_writes(close=True)
    _kill_pooled_connection(backend, server)
    assert [backend.get_result(t) for t in ("before", "single", "held-1", "held-2")] == [1, 2, 3, 4]
    backend.close()


@pytest.mark.parametrize("server", SERVERS)
def test_many_results_are_read_in_one_statement(server: str) -> None:
    """A group's wait reads every member each turn: one SELECT for all of them, each meta in
    the order asked (an id twice, twice; an unknown id PENDING)."""
    backend = DatabaseBackend(
        "db+" + run_database(server), Settings({"database_table_names": _tables()})
    )
    backend.mark_as_done("a", 1)
    backend.mark_as_failure("b", ValueError("no"))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = backend._get_engine()
    sa.event.listen(engine, "before_cursor_execute", seen)
    metas = backend.get_task_metas(["b", "missing", "a", "b"])
    sa.event.remove(engine, "before_cursor_execute", seen)
    assert [m["status"] for m in metas] == ["FAILURE", "PENDING", "SUCCESS", "FAILURE"]
    assert [m["task_id"] for m in metas] == ["b", "missing", "a", "b"]
    assert metas[2]["result"] == 1 and isinstance(metas[0]["result"], ValueError)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
    backend.close()


def test_a_wait_for_a_task_just_sent_reads_only_once_it_is_told() -> None:
    """A process that waits over LISTEN hears of every store of a task it sends from the
    send on: its wait reads once the NOTIFY comes (one read, the result), not first a
    PENDING that cannot be anything else; with no time left it still reads once."""
    settings = Settings({"database_table_names": _tables()})
    client = DatabaseBackend("db+" + run_database("postgres"), settings)
    worker = DatabaseBackend("db+" + run_database("postgres"), settings)
    worker.mark_as_done("earlier", 1)
    assert client.wait_for("earlier", timeout=10)["result"] == 1  # now listening
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        reads.append(statement)

    sa.event.listen(client._get_engine(), "before_cursor_execute", seen)
    client.on_task_call("sent")  # as the producer does before it publishes
    waiting = threading.Event()
    store = threading.Thread(target=lambda: waiting.wait(10) and worker.mark_as_done("sent", 2))
    store.start()
    meta = client.wait_for("sent", timeout=30, interval=10.0, on_interval=waiting.set)
    store.join(10)
    assert meta["result"] == 2 and len(reads) == 1
    client.on_task_call("done-already")
    worker.mark_as_done("done-already", 3)
    assert client.wait_for("done-already", timeout=0)["result"] == 3
    client.close()
    worker.close()
