"""Which time limits apply, and the soft limit in a thread and in the main thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.execution.timelimits import TimeLimits, limits_for
from celeriac.protocol.message import TaskCall
from celeriac.worker.pools.base import worker_hooks


def test_header_then_task_then_setting(memory_app: Celery) -> None:
    memory_app.conf.task_time_limit = 60
    memory_app.conf.task_soft_time_limit = 50

    @memory_app.task(soft_time_limit=10)
    def t() -> None: ...

    plain = TaskCall(name=t.name, id="1")
    assert limits_for(t, plain, memory_app.conf) == (60.0, 10.0)
    header = TaskCall(name=t.name, id="1", timelimit=(5, 3))
    assert limits_for(t, header, memory_app.conf) == (5.0, 3.0)


def test_time_limits_hook_is_innermost() -> None:
    assert isinstance(worker_hooks()[-1], TimeLimits)


def _run_with_soft_limit(app: Celery, limit: float) -> Any:
    from celeriac.execution.execute import execute

    @app.task(soft_time_limit=limit)
    def spin() -> str:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            time.sleep(0.001)
        return "finished"

    call = TaskCall(name=spin.name, id="soft-1")
    return execute(app, spin, call, hostname="h", hooks=worker_hooks(), store_result=False)


def test_soft_limit_in_a_thread(memory_app: Celery) -> None:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(_run_with_soft_limit(memory_app, 0.1)))
    thread.start()
    thread.join(10)
    assert isinstance(box[0].exception, SoftTimeLimitExceeded)


def test_soft_limit_in_the_main_thread_uses_sigalrm(memory_app: Celery) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    outcome = _run_with_soft_limit(memory_app, 0.1)
    assert isinstance(outcome.exception, SoftTimeLimitExceeded)
    assert outcome.runtime < 2
