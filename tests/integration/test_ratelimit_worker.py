"""Rate limits on a real in-thread worker: delayed, never blocking other tasks."""

from __future__ import annotations

import itertools
import time

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


def test_rate_limited_task_waits_while_others_run(app: Celery) -> None:
    done: dict[str, list[float]] = {"limited": [], "free": []}

    @app.task(rate_limit="5/s")
    def limited() -> None:
        done["limited"].append(time.monotonic())

    @app.task
    def free() -> None:
        done["free"].append(time.monotonic())

    with start_worker(app, pool="threads", concurrency=2):
        started = time.monotonic()
        slow = [limited.delay() for _ in range(4)]
        fast = [free.delay() for _ in range(10)]
        for result in fast:
            result.get(timeout=10)
        free_done = time.monotonic() - started
        for result in slow:
            result.get(timeout=10)
    stamps = done["limited"]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.15  # 5/s: one token every 0.2 s (capacity 1, no burst)
    assert free_done < stamps[-1] - started  # the free tasks did not wait behind them


def test_annotations_and_remote_control_change_the_rate(app: Celery) -> None:
    app.conf.task_annotations = {"t.limited": {"rate_limit": "1/h"}}
    app.conf.task_default_rate_limit = None

    @app.task(name="t.limited")
    def limited() -> str:
        return "ran"

    with start_worker(app) as worker:
        assert limited.rate_limit == "1/h"  # the worker applied the annotation
        assert limited.delay().get(timeout=10) == "ran"  # the first token is free
        second = limited.delay()
        consumer = worker.consumer
        assert consumer is not None
        wait_until(lambda: len(consumer.rate_limited) == 1, "the second call to wait for a token")
        assert second.state == "PENDING"
        replies = app.control.rate_limit("t.limited", "100/s", reply=True, timeout=2, limit=1)
        assert replies == [{worker.hostname: {"ok": "new rate limit set successfully"}}]
        assert second.get(timeout=10) == "ran"


def test_cluster_scope_shares_one_bucket_between_workers(app: Celery) -> None:
    if app.conf.broker_url.startswith(("memory", "amqp")):
        # No store on these brokers: the option names one (both workers live in this process).
        app.conf.worker_cluster_store = f"memory://{id(app)}"
    ran: list[float] = []

    @app.task(rate_limit="4/s", rate_limit_scope="cluster")
    def limited() -> None:
        ran.append(time.monotonic())

    with start_worker(app, hostname="a@x"), start_worker(app, hostname="b@x"):
        results = [limited.delay() for _ in range(4)]
        for result in results:
            result.get(timeout=10)
    ran.sort()
    gaps = [b - a for a, b in itertools.pairwise(ran)]
    assert min(gaps) >= 0.15  # two workers together still ran 4/s
