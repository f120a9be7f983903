"""Prefork children: ``worker_max_tasks_per_child`` replaces them; ``worker_process_init``
runs in each one (an in-thread worker whose pool forks children of the test process)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.testing import start_worker
from tests.integration.broker_envs import PROCESS

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("broker", PROCESS, indirect=True)]


def test_max_tasks_per_child_replaces_the_child_and_process_init_runs_in_each(
    app: Celery, tmp_path: Path
) -> None:
    app.conf.worker_max_tasks_per_child = 2
    inits = tmp_path / "inits"
    inits.mkdir()

    def on_init(sender: Any = None, **kw: Any) -> None:
        # Runs in the child (the receiver is inherited through fork): leave a trace there.
        (inits / str(os.getpid())).touch()

    @app.task
    def pid() -> int:
        return os.getpid()

    signals.worker_process_init.connect(on_init)
    try:
        with start_worker(app, pool="prefork", concurrency=1):
            pids = [pid.delay().get(timeout=15) for _ in range(6)]
    finally:
        signals.worker_process_init.disconnect(on_init)
    # One child at a time, each retired after two tasks: three children, two tasks each.
    assert [pids.count(p) for p in dict.fromkeys(pids)] == [2, 2, 2], pids
    assert os.getpid() not in pids
    assert set(pids) <= {int(p.name) for p in inits.iterdir()}


def test_max_memory_per_child_replaces_the_child_without_losing_tasks(app: Celery) -> None:
    # 1 KiB: every child is over the limit after its first batch, so each one retires.
    app.conf.worker_max_memory_per_child = 1

    @app.task
    def pid(i: int) -> tuple[int, int]:
        return i, os.getpid()

    with start_worker(app, pool="prefork", concurrency=1):
        results = [pid.delay(i) for i in range(8)]
        done = [r.get(timeout=30) for r in results]
    assert [i for i, _ in done] == list(range(8))  # every task ran, none lost on retirement
    assert all(r.state == "SUCCESS" for r in results)
    pids = [p for _, p in done]
    assert len(set(pids)) >= 2, pids  # the child was replaced
    assert os.getpid() not in pids
