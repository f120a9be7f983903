"""Fixtures shared by every test directory."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from celeriac import Celery

_counter = itertools.count()


@contextmanager
def logging_restored() -> Iterator[None]:
    """The logging configuration found on entry, restored on exit (an in-thread worker
    configures logging: a module-scoped one is set up before any test's own restore)."""
    names = ["", "celeriac", "celeriac.task"]
    saved = [
        (logging.getLogger(n), logging.getLogger(n).level, list(logging.getLogger(n).handlers))
        for n in names
    ]
    saved_propagate = logging.getLogger("celeriac.task").propagate
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
    logging.getLogger("celeriac.task").propagate = saved_propagate


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """An in-thread worker configures logging; give every test the configuration it found."""
    with logging_restored():
        yield


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    """An app on a private in-memory broker and result store."""
    name = f"t{os.getpid()}x{next(_counter)}"
    app = Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}")
    yield app
    app.close()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Celery]:
    """An app on SQLite files in a temporary directory (the embedded default, relocated)."""
    app = Celery(
        "t",
        broker=f"sqlite:///{tmp_path}/broker.sqlite",
        backend=f"db+sqlite:///{tmp_path}/results.sqlite",
    )
    yield app
    app.close()
