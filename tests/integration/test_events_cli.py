"""``celeriac events --dump`` and the live view, following a real worker (embedded broker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import FIXTURE_APPS, REPO, WorkerFactory, wait_until


class Monitor:
    def __init__(self, directory: Path, settings: dict[str, object], *args: str) -> None:
        self.log = directory / f"events-{len(list(directory.glob('events-*')))}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(FIXTURE_APPS)])
        env["WORKER_TEST_DIR"] = str(directory)
        env["WORKER_TEST_CONF"] = json.dumps(settings)
        command = [sys.executable, "-m", "celeriac", "-A", "worker_app", "events", *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def monitors(tmp_path: Path, broker: BrokerEnv) -> Iterator[list[Monitor]]:
    started: list[Monitor] = []
    yield started
    for monitor in started:
        monitor.stop()


def test_events_dump_prints_the_workers_and_tasks_events(
    client: Celery,
    start_worker: WorkerFactory,
    tmp_path: Path,
    broker: BrokerEnv,
    monitors: list[Monitor],
) -> None:
    monitor = Monitor(tmp_path, broker.settings, "--dump")
    monitors.append(monitor)
    wait_until(lambda: "Starting capture" in monitor.output(), "the dump to start")
    start_worker("-P", "threads", "-E", "-n", "dump@test")
    result = client.send_task("tasks.add", (20, 22))
    assert result.get(timeout=30) == 42
    wait_until(lambda: "task succeeded" in monitor.output(), "task succeeded in the dump")
    out = monitor.output()
    assert "dump@test [" in out and "started" in out  # worker-online
    assert f"task received: tasks.add({result.id}) args=(20, 22) kwargs={{}}" in out
    assert "result=42" in out


def test_events_live_view_lists_the_worker_and_its_task(
    client: Celery,
    start_worker: WorkerFactory,
    tmp_path: Path,
    broker: BrokerEnv,
    monitors: list[Monitor],
) -> None:
    monitor = Monitor(tmp_path, broker.settings, "-F", "0.2")
    monitors.append(monitor)
    wait_until(lambda: "worker(s) online" in monitor.output(), "the view to start")
    start_worker("-P", "threads", "-E", "-n", "view@test")
    result = client.send_task("tasks.add", (1, 2))
    assert result.get(timeout=30) == 3

    def shown() -> bool:
        last = monitor.output().rsplit("celeriac events:", 1)[-1]
        return "view@test  ONLINE" in last and f"{result.id}  tasks.add  SUCCESS" in last

    wait_until(shown, "the worker and the task in the view")
