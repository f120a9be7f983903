"""Chords joined by the SQLAlchemy result store (PostgreSQL, MariaDB): a real worker counts
the header in the chord's counter row and sends the body once, with no ``chord_unlock``."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from celeriac import Celery, chord, group, states
from celeriac.backends.capabilities import JoinsChords
from celeriac.backends.database.backend import DatabaseBackend
from celeriac.backends.database.chord import CHORD_TABLE
from celeriac.exceptions import ChordError
from celeriac.worker.worker import Worker
from tests.conftest import logging_restored
from tests.integration.conftest import wait_until
from tests.servers import run_database

_names = itertools.count()


@pytest.fixture(
    scope="module", params=[pytest.param("postgres", id="postgresql"), pytest.param("mysql")]
)
def app(request: pytest.FixtureRequest) -> Iterator[Celery]:
    """One app and one threaded worker per server, on a memory broker and the server's store."""
    n = f"{os.getpid()}_{next(_names)}"
    app = Celery(
        "dbchord",
        broker=f"memory://dbchord-{n}",
        backend="db+" + run_database(str(request.param)),
        database_table_names={"task": f"ch_tm_{n}", "group": f"ch_tsm_{n}"},
    )

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="t.fail")
    def fail(*args: Any) -> None:
        raise ValueError("boom")

    with logging_restored():  # the worker configures logging: undo it after the module
        worker = Worker(
            app, pool="threads", concurrency=4, install_signal_handlers=False, without_banner=True
        )
        thread = threading.Thread(target=worker.start, daemon=True)
        thread.start()
        yield app
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()
        app.close()


def test_the_store_counts_the_header_and_sends_the_body_once(app: Celery) -> None:
    assert isinstance(app.backend, DatabaseBackend) and isinstance(app.backend, JoinsChords)
    add, tsum = app.tasks["t.add"], app.tasks["t.tsum"]
    result = chord(add.s(i, i) for i in range(20))(tsum.s())
    assert result.get(timeout=30) == 380
    upgraded = (group(add.s(i, 1) for i in range(3)) | tsum.s()).delay()
    assert upgraded.get(timeout=30) == 6
    # the counter row is marked finished: a late header copy cannot send the body again
    engine = sa.create_engine(app.backend.sa_url)
    with engine.connect() as conn:
        finished = conn.execute(
            sa.text(f"SELECT finished FROM {CHORD_TABLE} WHERE group_id = :g"),
            {"g": result.parent.id},
        ).scalar_one()
    engine.dispose()
    assert finished
    late = app.backend.chord_part_return(result.parent.id, "late", 0, states.SUCCESS, 0)
    assert late is None


def test_a_failing_header_task_fails_the_body(app: Celery) -> None:
    add, tsum, fail = app.tasks["t.add"], app.tasks["t.tsum"], app.tasks["t.fail"]
    result = chord([add.s(1, 1), fail.s()], tsum.s()).apply_async()
    wait_until(lambda: result.state == states.FAILURE, "the body to fail")
    with pytest.raises(ChordError, match="boom"):
        result.get(timeout=30, follow_parents=False)
