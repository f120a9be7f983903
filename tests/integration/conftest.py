"""Helpers for tests that run a real worker: the broker namespace (``broker``: SQLite unless a
test parametrizes it indirectly with kinds from ``broker_envs``), an app on it, worker
subprocesses, and deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from tests.integration.broker_envs import BrokerEnv, make_env
from tests.tls_front import Certs, make_certs

REPO = Path(__file__).resolve().parents[2]
FIXTURE_APPS = Path(__file__).resolve().parent / "fixture_apps"
DEADLINE = 30.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def state_of(app: Celery, task_id: str) -> str:
    return app.backend.get_state(task_id)


def wait_state(app: Celery, task_id: str, *wanted: str) -> str:
    """Until the task's stored state is one of ``wanted``; return it."""
    return wait_until(
        lambda: (s := state_of(app, task_id)) in wanted and s, f"{task_id} in {wanted}"
    )


class WorkerProcess:
    """``python -m celeriac -A worker_app worker ...`` with output in a log file."""

    def __init__(self, directory: Path, *args: str, conf: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self.log = directory / f"worker-{time.monotonic_ns()}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(FIXTURE_APPS)])
        env["WORKER_TEST_DIR"] = str(directory)
        env["WORKER_TEST_CONF"] = json.dumps(conf or {})
        # -l info by default: "<name> ready." is an INFO line and wait_ready looks for it.
        level = [] if "-l" in args else ["-l", "info"]
        command = [sys.executable, "-m", "celeriac", "-A", "worker_app", "worker", *level, *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = DEADLINE) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return " ready." in self.output()

        wait_until(ready, "the worker to be ready", timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # the worker prints every thread's stack
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1.0)  # time to print them (it does not exit on SIGUSR1)
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker did not exit in {timeout}s:\n{self.output()}") from None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait_exit()


class WorkerFactory:
    """Starts workers in one directory and stops whatever is left at the end of the test."""

    def __init__(self, directory: Path, base_conf: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self.base_conf = dict(base_conf or {})
        self.started: list[WorkerProcess] = []

    def __call__(self, *args: str, conf: dict[str, Any] | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.directory, *args, conf={**self.base_conf, **(conf or {})})
        self.started.append(worker)
        worker.wait_ready()
        return worker

    def cleanup(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerEnv]:
    """This test's private broker and result store: SQLite files by default; a test picks
    others with ``@pytest.mark.parametrize("broker", broker_envs.ALL, indirect=True)``."""
    env = make_env(getattr(request, "param", "sqlite"), tmp_path)
    try:
        yield env
    finally:
        env.cleanup()


@pytest.fixture
def app(broker: BrokerEnv) -> Iterator[Celery]:
    """A client app on ``broker`` (an in-thread worker of it serves the same namespace)."""
    app = broker.app()
    yield app
    app.close()


@pytest.fixture
def start_worker(tmp_path: Path, broker: BrokerEnv) -> Iterator[WorkerFactory]:
    """Worker subprocesses of ``worker_app`` on ``broker`` (through ``WORKER_TEST_CONF``)."""
    factory = WorkerFactory(tmp_path, broker.settings)
    yield factory
    factory.cleanup()


@pytest.fixture
def client(broker: BrokerEnv) -> Iterator[Celery]:
    """A client app on the same broker and result store as the fixture app's workers."""
    app = broker.app("client")
    # Create the SQLite files (in WAL mode) before any worker process opens them.
    app.backend.get_state("warm-up")
    queue_size(app)
    yield app
    app.close()


def queue_size(app: Celery, queue: str = "celery") -> int:
    with app.connection() as conn:
        return conn.size(queue)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate it signed and an unrelated CA, for the TLS fronts."""
    return make_certs(tmp_path_factory)
