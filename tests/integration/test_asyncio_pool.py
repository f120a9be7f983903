"""``-P asyncio``: async tasks share one loop, each with its own request; sync tasks too."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.task import Task
from celeriac.worker.worker import Worker
from tests.integration.broker_envs import ALL

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


def start_worker(app: Celery, pool: str, concurrency: int) -> tuple[Worker, threading.Thread]:
    worker = Worker(
        app, pool=pool, concurrency=concurrency, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    return worker, thread


def stop_worker(worker: Worker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_async_tasks_run_concurrently_with_their_own_request(app: Celery) -> None:
    @app.task(bind=True)
    async def nap(self: Task[Any, Any], n: int) -> tuple[int, str | None]:
        await asyncio.sleep(0.2)
        return n, self.request.id

    @app.task
    def plain(x: int) -> int:
        return x * 2

    worker, thread = start_worker(app, "asyncio", 100)
    try:
        start = time.monotonic()
        results = [nap.delay(i) for i in range(100)]
        values = [r.get(timeout=30) for r in results]
        elapsed = time.monotonic() - start
        assert plain.delay(21).get(timeout=30) == 42
    finally:
        stop_worker(worker, thread)
    assert [v[0] for v in values] == list(range(100))
    assert [v[1] for v in values] == [r.id for r in results]  # each saw its own request
    assert elapsed < 100 * 0.2 / 4  # concurrent, not one after another


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_async_tasks_on_other_pools_run_to_completion(app: Celery, pool: str) -> None:
    @app.task(bind=True)
    async def nap(self: Task[Any, Any], n: int) -> tuple[int, str | None]:
        await asyncio.sleep(0.01)
        return n, self.request.id

    worker, thread = start_worker(app, pool, 2)
    try:
        results = [nap.delay(i) for i in range(5)]
        values = [r.get(timeout=30) for r in results]
    finally:
        stop_worker(worker, thread)
    assert [list(v) for v in values] == [[i, r.id] for i, r in enumerate(results)]


def test_async_failure_and_retry_on_asyncio_pool(app: Celery) -> None:
    @app.task(bind=True, max_retries=2)
    async def flaky(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return self.request.retries

    @app.task
    async def broken() -> None:
        raise ValueError("nope")

    worker, thread = start_worker(app, "asyncio", 10)
    try:
        assert flaky.delay().get(timeout=30) == 2
        with pytest.raises(ValueError, match="nope"):
            broken.delay().get(timeout=30)
    finally:
        stop_worker(worker, thread)
