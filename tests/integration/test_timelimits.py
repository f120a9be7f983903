"""Soft and hard time limits on real workers (threads in-thread; prefork in the slow set),
on every broker (prefork: the brokers its child processes can share)."""

from __future__ import annotations

import time

import pytest

from celeriac import Celery
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL, PROCESS


def _busy(seconds: float) -> None:
    """Python-level work (an async exception lands between two bytecodes)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.005)


@pytest.mark.parametrize("broker", ALL, indirect=True)
def test_soft_limit_raises_inside_the_task_threads_pool(app: Celery) -> None:
    @app.task(soft_time_limit=0.2)
    def slow() -> str:
        try:
            _busy(10)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    with start_worker(app, pool="threads", concurrency=2):
        started = time.monotonic()
        assert slow.delay().get(timeout=10) == "cleaned up"
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("broker", ALL, indirect=True)
def test_timelimit_header_from_the_client_and_hard_limit_in_threads(app: Celery) -> None:
    @app.task
    def slow() -> str:
        _busy(10)
        return "finished"

    with start_worker(app, pool="threads", concurrency=2):
        result = slow.apply_async(time_limit=0.3)
        with pytest.raises(TimeLimitExceeded) as caught:
            result.get(timeout=10)
        assert caught.value.args == (0.3,)
        assert result.state == "FAILURE"
        soft = slow.apply_async(soft_time_limit=0.2)
        with pytest.raises(SoftTimeLimitExceeded):
            soft.get(timeout=10)


@pytest.mark.parametrize("broker", ALL, indirect=True)
def test_worker_setting_applies_to_every_task(app: Celery) -> None:
    app.conf.task_soft_time_limit = 0.2

    @app.task
    def slow() -> str:
        _busy(10)
        return "finished"

    with start_worker(app, pool="threads"), pytest.raises(SoftTimeLimitExceeded):
        slow.delay().get(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_prefork_soft_limit_interrupts_sleep_and_hard_limit_replaces_the_child(
    app: Celery,
) -> None:
    """Prefork children are processes: a memory broker and store are not shared with them."""

    @app.task(soft_time_limit=0.3)
    def sleepy_soft() -> str:
        try:
            time.sleep(30)
        except SoftTimeLimitExceeded:
            return "soft"
        return "slept"

    @app.task(time_limit=0.5)
    def sleepy_hard() -> str:
        time.sleep(30)
        return "slept"

    @app.task
    def pid() -> int:
        import os

        return os.getpid()

    with start_worker(app, pool="prefork", concurrency=1) as worker:
        assert worker.pool is not None
        started = time.monotonic()
        assert sleepy_soft.delay().get(timeout=15) == "soft"
        before = worker.pool.pids()
        result = sleepy_hard.delay()
        with pytest.raises(TimeLimitExceeded) as caught:
            result.get(timeout=15)
        assert caught.value.args == (0.5,)
        assert time.monotonic() - started < 10
        assert pid.delay().get(timeout=15) not in before  # a new child took over
