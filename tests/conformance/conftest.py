"""Transport fixtures: every test of the conformance suite runs once per broker.

A new broker joins the suite by appending one factory to ``TRANSPORT_FACTORIES``. A factory
gets the test's temporary directory, a name unique to the test and the transport options, and
returns an unopened transport on a namespace no other test uses; two calls with the same name
must reach the same queues (a producer and a second consumer). It also adds an unopened
instance to ``SAMPLES`` (made without a server): the capability modules
(``test_cap_*.py``) run on the transports whose sample claims the capability.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.base import Transport
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.postgres.transport import PostgresTransport
from celeriac.transports.redis.transport import RedisTransport
from celeriac.transports.sqlite.transport import SQLiteTransport
from tests.amqp_helpers import conformance_transport
from tests.servers import REDIS_BROKER_DB, redis_namespace, run_database

TransportFactory = Callable[[Path, str, Mapping[str, Any]], Transport]


def _memory(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    return MemoryTransport(f"memory://{name}", options)


def _sqlite(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    return SQLiteTransport(f"sqlite:///{tmp_path}/broker.sqlite", options)


def _postgresql(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    # A schema per test (dropped with this run's database) keeps the tests apart.
    schema = "t_" + name.replace("-", "_")
    return PostgresTransport(run_database("postgres"), {**options, "schema": schema})


def _redis(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    # Every key and fanout channel of a test starts with its own prefix; removed at exit.
    # Ten priority steps: the suite checks exact priority order, which kombu's default
    # steps (0, 3, 6, 9) quantise (tests/unit/test_redis_keys.py covers those).
    url = redis_namespace(REDIS_BROKER_DB, f"conformance-{os.getpid()}-*")
    steps = list(range(10))
    return RedisTransport(url, {"priority_steps": steps, **options, "global_keyprefix": f"{name}:"})


def _redis_plain(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    # The same, with the hot commands over plain redis-py instead of the lean RESP path.
    return _redis(tmp_path, name, {**options, "redis_lean_resp": False})


def _amqp(tmp_path: Path, name: str, options: Mapping[str, Any]) -> Transport:
    # This run's RabbitMQ vhost; the queues of the previous test are deleted first.
    return conformance_transport(name, options)


TRANSPORT_FACTORIES = [
    pytest.param(_memory, id="memory"),
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_postgresql, id="postgresql"),
    pytest.param(_redis, id="redis"),
    pytest.param(_redis_plain, id="redis-plain"),
    pytest.param(_amqp, id="amqp"),
]

#: One unopened instance per suite id, configured as its factory configures it (no server).
SAMPLES: dict[str, Callable[[], Transport]] = {
    "memory": lambda: MemoryTransport("memory://sample"),
    "sqlite": lambda: SQLiteTransport("sqlite:///sample.sqlite"),
    "postgresql": lambda: PostgresTransport("postgresql://sample/sample"),
    "redis": lambda: RedisTransport("redis://sample/0"),
    "redis-plain": lambda: RedisTransport("redis://sample/0", {"redis_lean_resp": False}),
    "amqp": lambda: AMQPTransport("amqp://sample//"),
}


def kinds_where(claims: Callable[[Transport], bool]) -> list[Any]:
    """The suite's transports whose sample satisfies ``claims``, e.g.
    ``lambda t: isinstance(t, Defers)`` (for ``pytest.mark.parametrize(..., indirect=True)``)."""
    return [param for param in TRANSPORT_FACTORIES if claims(SAMPLES[str(param.id)]())]


def kind_ids(params: Sequence[Any]) -> set[str]:
    """The suite ids of ``pytest.param`` values."""
    return {str(param.id) for param in params}


_names = itertools.count()


class Broker:
    """One isolated broker namespace; ``connect()`` makes another client of it."""

    def __init__(self, factory: TransportFactory, tmp_path: Path) -> None:
        self._factory = factory
        self._tmp_path = tmp_path
        self.name = f"conformance-{os.getpid()}-{next(_names)}"
        self._clients: list[Transport] = []

    def connect(self, **options: Any) -> Transport:
        transport = self._factory(self._tmp_path, self.name, options)
        transport.open()
        self._clients.append(transport)
        return transport

    def close_all(self) -> None:
        for transport in self._clients:
            transport.close()


@pytest.fixture(params=TRANSPORT_FACTORIES)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker namespace per test, for each transport in the suite."""
    namespace = Broker(request.param, tmp_path)
    yield namespace
    namespace.close_all()


@pytest.fixture
def transport(broker: Broker) -> Transport:
    """An open client of a fresh broker."""
    return broker.connect()
