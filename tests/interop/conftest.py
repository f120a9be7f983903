"""Interop fixtures: real Celery 5.7 and celeriac clients and worker processes on one broker.

The same task module (``APP`` below) is written once per package: ``celery`` or ``celeriac``.
A test module picks brokers with ``pytest.mark.parametrize("endpoint", [...],
indirect=True, scope="module")``; ``ENDPOINTS`` maps a broker name to a factory, so another
broker joins by adding one entry. Everything an endpoint creates lives under a namespace of
its own (a key prefix on Redis) and is removed afterwards.

Fixtures (module scope, so a worker starts once per module and broker):

* ``endpoint`` -> :class:`Endpoint` (broker URL, backend URL, shared settings);
* ``celery_client`` / ``celeriac_client`` -> an app object of each package;
* ``serve_link(request, endpoint, factory)`` -> a :class:`Link` (a client of one package and a
  running worker of the other) for a module-scope ``link`` fixture; the worker stops when the
  direction changes, so the two directions never share a queue between two workers;
* ``start_worker`` -> a function-scope factory for workers with other queues or pools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REDIS_INTEROP_DB, delete_redis_keys, redis_url, require_redis

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 45.0

#: The task module both packages serve; ``{package}`` is ``celery`` or ``celeriac``.
APP = textwrap.dedent(
    """
    import json
    import os
    import time

    from {package} import Celery, group

    app = Celery("interop_app", broker=os.environ["INTEROP_BROKER"],
                 backend=os.environ["INTEROP_BACKEND"])
    app.conf.update(json.loads(os.environ["INTEROP_CONF"]))


    @app.task(name="interop.add")
    def add(x, y):
        return x + y


    @app.task(name="interop.fail")
    def fail(message):
        raise ValueError(message, 42)


    @app.task(name="interop.echo")
    def echo(*args, **kwargs):
        return {{"args": list(args), "kwargs": kwargs}}


    @app.task(name="interop.errback")
    def errback(task_id):
        return task_id


    @app.task(name="interop.now")
    def now(tag=None):
        return time.time()


    @app.task(name="interop.spawn")
    def spawn(x):
        add.delay(x, 1)
        group(add.s(x, i) for i in range(2)).delay()
        return x


    @app.task(name="interop.flaky", bind=True, max_retries=3)
    def flaky(self):
        if self.request.retries < 1:
            raise self.retry(exc=KeyError("again"), countdown=0.2)
        return self.request.retries


    @app.task(name="interop.block")
    def block(release, limit=30.0):
        deadline = time.monotonic() + limit
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        return "released"
    """
)


@dataclass
class Endpoint:
    """One broker + result backend pair and the settings every app on it uses."""

    name: str
    broker: str
    backend: str
    conf: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] = lambda: None

    def env(self, conf: dict[str, Any] | None = None) -> dict[str, str]:
        return {
            "INTEROP_BROKER": self.broker,
            "INTEROP_BACKEND": self.backend,
            "INTEROP_CONF": json.dumps({**self.conf, **(conf or {})}),
        }


def _redis_endpoint(namespace: str) -> Endpoint:
    require_redis()
    url = redis_url(REDIS_INTEROP_DB)
    prefix = f"{namespace}:"
    return Endpoint(
        "redis",
        url,
        url,
        conf={
            "task_default_queue": f"{namespace}.q",
            "broker_transport_options": {"global_keyprefix": prefix},
            "result_backend_transport_options": {"global_keyprefix": prefix},
        },
        cleanup=lambda: delete_redis_keys(REDIS_INTEROP_DB, f"{prefix}*") and None,
    )


#: broker name -> factory(namespace) of an isolated endpoint.
ENDPOINTS: dict[str, Callable[[str], Endpoint]] = {"redis": _redis_endpoint}


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    name = getattr(request, "param", "redis")
    made = ENDPOINTS[name](f"interop-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield made
    made.cleanup()


class WorkerProcess:
    """A ``celery`` or ``celeriac`` worker subprocess serving ``interop_app``."""

    def __init__(
        self,
        package: str,
        endpoint: Endpoint,
        directory: Path,
        *args: str,
        conf: dict[str, Any] | None = None,
        source: str = APP,
        env: dict[str, str] | None = None,
    ) -> None:
        """``source``: the text of ``interop_app`` (a template with ``{package}``)."""
        self.package = package
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "interop_app.py").write_text(source.format(package=package))
        self.log = directory / f"{package}-worker-{time.monotonic_ns()}.log"
        env = dict(os.environ, **endpoint.env(conf), **(env or {}))
        env["PYTHONPATH"] = os.pathsep.join([str(directory), str(REPO)])
        command = [sys.executable, "-m", package, "-A", "interop_app", "worker", "-l", "info"]
        if package == "celery":  # no cluster chatter: faster start, fewer moving parts
            command += ["--without-mingle", "--without-gossip"]
            if "--heartbeat-interval" not in args:  # a test watching worker events asks
                command.append("--without-heartbeat")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, *args], cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = DEADLINE) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.package} worker exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.package} worker not ready:\n{self.output()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = DEADLINE) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.package} worker did not stop:\n{self.output()}") from None


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(endpoint: Endpoint, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker("celery", "-Q", "q", conf={...})``: started and ready; stopped after."""
    started: list[WorkerProcess] = []

    def start(package: str, *args: str, conf: dict[str, Any] | None = None) -> WorkerProcess:
        worker = WorkerProcess(package, endpoint, tmp_path / package, *args, conf=conf)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def _module_worker(
    package: str, endpoint: Endpoint, factory: pytest.TempPathFactory, pool: str
) -> Iterator[WorkerProcess]:
    directory = factory.mktemp(f"{package}-worker")
    queues = f"{endpoint.conf.get('task_default_queue', 'celery')},{other_queue(endpoint)}"
    worker = WorkerProcess(package, endpoint, directory, "-P", pool, "-c", "2", "-Q", queues)
    worker.wait_ready()
    yield worker
    worker.stop()


def other_queue(endpoint: Endpoint) -> str:
    """A second, named queue every module worker also consumes."""
    return f"{endpoint.conf.get('task_default_queue', 'celery')}.other"


class Link:
    """A client app of one package and a running worker of the other."""

    def __init__(self, name: str, client: Any, worker: WorkerProcess) -> None:
        self.name = name
        self.client = client
        self.worker = worker
        self.worker_package = worker.package

    def send(self, name: str, *args: Any, **options: Any) -> Any:
        return self.client.send_task(name, args=args, **options)


#: The two directions a module-scope ``link`` fixture is parametrized with.
DIRECTIONS = ["celery->celeriac", "celeriac->celery"]


def serve_link(
    request: pytest.FixtureRequest, endpoint: Endpoint, factory: pytest.TempPathFactory
) -> Iterator[Link]:
    """Yield the :class:`Link` of ``request.param`` (one of :data:`DIRECTIONS`); its worker is
    stopped at teardown, before the other direction's worker starts on the same queues."""
    celery_sends = request.param == DIRECTIONS[0]
    client = request.getfixturevalue("celery_client" if celery_sends else "celeriac_client")
    worker_package = "celeriac" if celery_sends else "celery"
    for worker in _module_worker(worker_package, endpoint, factory, "threads"):
        yield Link(request.param, client, worker)


@pytest.fixture(scope="module", autouse=True)
def _fresh_kombu_pools() -> Iterator[None]:
    """Each module starts with kombu's process-wide pools empty. Celery's producer pool is
    ``kombu.pools.producers[connection]``, keyed by URL and shared by every app in the process,
    so a later module's Celery client (the same vhost: it is per process) would publish on a
    connection an earlier module opened, which the broker may have closed while it sat idle
    (ConnectionResetError when three processes run the suite)."""
    yield
    from kombu import pools  # lazy: only the interop tests have real Celery (kombu) installed

    pools.reset()


@pytest.fixture(scope="module")
def celery_client(endpoint: Endpoint) -> Iterator[Any]:
    """A real Celery app object (client side) on the endpoint."""
    import celery

    app = celery.Celery(
        "interop_client", broker=endpoint.broker, backend=endpoint.backend, set_as_current=False
    )
    app.conf.update(endpoint.conf)
    yield app
    app.close()


@pytest.fixture(scope="module")
def celeriac_client(endpoint: Endpoint) -> Iterator[Any]:
    from celeriac import Celery

    app = Celery(
        "interop_client", broker=endpoint.broker, backend=endpoint.backend, set_as_current=False
    )
    app.conf.update(endpoint.conf)
    yield app
    app.close()
