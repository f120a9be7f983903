"""The result stores the ResultBackend conformance suite runs on, and its fixtures.

A new backend joins the suite by appending one ``BackendKind`` to ``BACKEND_KINDS``. Its
factory gets the test's temporary directory, a name unique to the test and the settings,
and returns a backend; two calls with the same name must reach the same stored results
(a worker and a client).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac.app.config import Settings
from celeriac.backends.base import ResultBackend
from celeriac.backends.database.backend import DatabaseBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.redis import RedisBackend
from celeriac.backends.sqlite import SQLiteBackend
from tests.servers import REDIS_RESULTS_DB, redis_namespace, run_database

Factory = Callable[[Path, str, Settings], ResultBackend]


@dataclass(frozen=True)
class BackendKind:
    make: Factory
    #: The class ``make`` returns: the capability modules (``test_cap_*.py``) run on the kinds
    #: whose class claims the capability (store capabilities are methods only, so
    #: ``issubclass`` against the Protocol answers without making a store).
    cls: type[ResultBackend]
    #: A store made by this process wakes a waiter at once (else the waiter polls).
    wakes_waiters: bool = True


def _memory(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    return MemoryBackend(f"cache+memory://{name}", conf)


def _sqlite(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    return SQLiteBackend(f"db+sqlite:///{tmp_path}/results-{name}.sqlite", conf)


def _sql_tables(name: str, conf: Settings) -> None:
    """Tables of their own for each test, in this run's database."""
    suffix = name.replace("-", "_")
    conf.update(database_table_names={"task": f"tm_{suffix}", "group": f"tsm_{suffix}"})


def _postgresql(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    url = run_database("postgres")
    _sql_tables(name, conf)
    return DatabaseBackend(f"db+{url}", conf)


def _mysql(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    url = run_database("mysql")
    _sql_tables(name, conf)
    return DatabaseBackend(f"db+{url}", conf)


def _redis(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    # Keys of a test start with its name (global_keyprefix); removed when the run ends.
    url = redis_namespace(REDIS_RESULTS_DB, f"conformance-{os.getpid()}-*")
    conf.update(result_backend_transport_options={"global_keyprefix": f"{name}:"})
    return RedisBackend(url, conf)


def _redis_plain(tmp_path: Path, name: str, conf: Settings) -> ResultBackend:
    # The same, with the hot commands over plain redis-py instead of the lean RESP path.
    conf.update(redis_lean_resp=False)
    return _redis(tmp_path, name, conf)


BACKEND_KINDS = [
    pytest.param(BackendKind(_memory, MemoryBackend), id="memory"),
    pytest.param(BackendKind(_sqlite, SQLiteBackend), id="sqlite"),
    pytest.param(BackendKind(_postgresql, DatabaseBackend), id="db+postgresql"),
    pytest.param(BackendKind(_mysql, DatabaseBackend), id="db+mysql+pymysql"),
    pytest.param(BackendKind(_redis, RedisBackend), id="redis"),
    pytest.param(BackendKind(_redis_plain, RedisBackend), id="redis-plain"),
]


def kinds_where(claims: Callable[[type[ResultBackend]], bool]) -> list[Any]:
    """The suite's stores whose class satisfies ``claims``, e.g.
    ``lambda cls: issubclass(cls, UniqueClaims)`` (for ``parametrize(..., indirect=True)``)."""
    return [param for param in BACKEND_KINDS if claims(param.values[0].cls)]


def kind_ids(params: Sequence[Any]) -> set[str]:
    """The suite ids of ``pytest.param`` values."""
    return {str(param.id) for param in params}


_names = itertools.count()


class Store:
    """One isolated result store; ``connect()`` makes another client of it."""

    def __init__(self, kind: BackendKind, tmp_path: Path) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self.name = f"conformance-{os.getpid()}-{next(_names)}"
        self._clients: list[ResultBackend] = []

    def connect(self, **settings: Any) -> ResultBackend:
        backend = self.kind.make(self._tmp_path, self.name, Settings(settings))
        self._clients.append(backend)
        return backend

    def close_all(self) -> None:
        for backend in self._clients:
            backend.close()


@pytest.fixture(params=BACKEND_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    namespace = Store(request.param, tmp_path)
    yield namespace
    namespace.close_all()


@pytest.fixture
def backend(store: Store) -> ResultBackend:
    return store.connect()
