"""Isolated broker + result-store namespaces for tests that run a real worker.

One :class:`BrokerEnv` per test: the settings a client app (and a worker subprocess, through
``WORKER_TEST_CONF``) needs to reach the same private broker and result store, and the cleanup
that removes only what the test created.

- ``memory``: a private in-process broker and store (in-thread workers only).
- ``sqlite``: files in the test's temporary directory.
- ``redis``: broker in DB 10, results in DB 11, every key under a prefix unique to the test
  (``global_keyprefix`` on both; the cluster store follows the broker's prefix); the keys are
  deleted with SCAN+DEL when the test ends.
- ``amqp``: this run's RabbitMQ vhost; results in Redis DB 11 under the test's prefix (the
  features need a store every process can read); the queues tests use are deleted before and
  after each test.
- ``amqp-rpc``: the same broker with the ``rpc://`` result backend.
- ``postgres``: this run's PostgreSQL database, a schema unique to the test (gone with the
  database when the run ends); results in Redis DB 11 under the test's prefix.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celeriac import Celery
from tests.servers import (
    delete_redis_keys,
    rabbitmq_url,
    redis_namespace,
    run_database,
)

#: Redis databases of these tests (13-15 belong to other suites, 8-9 to the benchmarks).
REDIS_WORKER_BROKER_DB = 10
REDIS_WORKER_RESULTS_DB = 11

#: Every broker a feature is proven on through an in-thread worker.
ALL = ["memory", "sqlite", "redis", "amqp"]
#: Brokers a worker subprocess can share with the test (memory is per process).
PROCESS = ["sqlite", "redis", "amqp"]

#: Queue names the worker tests use; deleted in the AMQP vhost before and after each test.
AMQP_QUEUES = ("celery", "celery.dead", "slow", "slow.dead", "q1", "q2", "q3", "later")

_names = itertools.count()


@dataclass
class BrokerEnv:
    kind: str
    tmp_path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""

    @property
    def broker_url(self) -> str:
        return str(self.settings["broker_url"])

    def app(self, main: str = "t") -> Celery:
        """A new client app on this namespace (close it, or let the fixture do it)."""
        app = Celery(main)
        app.conf.update(self.settings)
        return app

    def cleanup(self) -> None:
        if self.prefix:
            delete_redis_keys(REDIS_WORKER_BROKER_DB, self.prefix + "*")
            delete_redis_keys(REDIS_WORKER_RESULTS_DB, self.prefix + "*")
        if self.kind.startswith("amqp"):
            from tests.amqp_helpers import delete_queues

            delete_queues(self.broker_url, AMQP_QUEUES)


def _redis_results(prefix: str) -> dict[str, Any]:
    url = redis_namespace(REDIS_WORKER_RESULTS_DB, f"celeriac-i6-{os.getpid()}-*")
    return {"result_backend": url, "result_backend_transport_options": {"global_keyprefix": prefix}}


def make_env(kind: str, tmp_path: Path) -> BrokerEnv:
    """A fresh namespace of ``kind``; skips (or fails under CI) when its server is down."""
    name = f"celeriac-i6-{os.getpid()}-{next(_names)}"
    if kind == "memory":
        settings = {"broker_url": f"memory://{name}", "result_backend": f"cache+memory://{name}"}
        return BrokerEnv(kind, tmp_path, settings)
    if kind == "sqlite":
        settings = {
            "broker_url": f"sqlite:///{tmp_path}/broker.sqlite",
            "result_backend": f"db+sqlite:///{tmp_path}/results.sqlite",
        }
        return BrokerEnv(kind, tmp_path, settings)
    prefix = f"{name}:"
    if kind == "redis":
        settings = {
            "broker_url": redis_namespace(REDIS_WORKER_BROKER_DB, f"celeriac-i6-{os.getpid()}-*"),
            "broker_transport_options": {"global_keyprefix": prefix},
            **_redis_results(prefix),
        }
        return BrokerEnv(kind, tmp_path, settings, prefix)
    if kind in ("amqp", "amqp-rpc"):
        results = {"result_backend": "rpc://"} if kind == "amqp-rpc" else _redis_results(prefix)
        env = BrokerEnv(kind, tmp_path, {"broker_url": rabbitmq_url(), **results}, prefix)
        env.cleanup()  # a crashed earlier test may have left messages behind
        return env
    if kind == "postgres":
        settings = {
            "broker_url": run_database("postgres"),
            "broker_transport_options": {"schema": name.replace("-", "_")},
            **_redis_results(prefix),
        }
        return BrokerEnv(kind, tmp_path, settings, prefix)
    raise ValueError(f"unknown broker kind {kind!r}")


__all__ = ["ALL", "AMQP_QUEUES", "PROCESS", "BrokerEnv", "make_env"]
